/** `moonmind viz`: the live view's HTTP server (src/viz/server.ts) as an actor of its own. */
import { hostActor } from "../../src/actor-host.js";
import { VizServer } from "../../src/viz/server.js";

// It only reads what intake provisioned (and relays ops requests): its role may create nothing.
process.exit(await hostActor("viz", ({ nc, config, log }) => new VizServer(nc, config, log), process.env, { provision: false }));

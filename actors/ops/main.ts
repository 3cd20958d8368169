/** `moonmind ops`: one replica of the `moonmind-ops` service (any number share its requests). */
import { hostActor } from "../../src/actor-host.js";
import { Ops } from "./ops.js";

// Run by `moonmind ops` in its own process, or as a child of `moonmind dev`; the process ends with the actor.
process.exit(await hostActor("ops", ({ nc, config, log }) => new Ops(nc, config, log)));

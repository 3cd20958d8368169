/** `moonmind intake`: one intake replica. */
import { hostActor } from "../../src/actor-host.js";
import { Intake } from "./intake.js";

// Run by `moonmind intake` in its own process, or as a child of `moonmind dev`; the process ends with the actor
// (timers of its logins or brokers must not keep a stopped actor alive).
process.exit(await hostActor("intake", ({ nc, config, log }) => new Intake(nc, config, log)));

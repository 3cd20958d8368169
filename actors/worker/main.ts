/** `moonmind worker`: one worker, serving MOONMIND_WORKER_RUNTIMES on its shards. */
import { hostActor } from "../../src/actor-host.js";
import { Worker } from "./worker.js";

// Run by `moonmind worker` in its own process, or as a child of `moonmind dev`; the process ends with the actor
// (timers of its logins or brokers must not keep a stopped actor alive).
process.exit(await hostActor("worker", ({ nc, config, log }) => new Worker(nc, config, log)));

/** `moonmind worker`: one worker, serving MOONMIND_WORKER_RUNTIMES on its shards. */
import { hostActor } from "../../src/actor-host.js";
import { Worker } from "./worker.js";

await hostActor("worker", async ({ nc, config, log }) => {
  const worker = new Worker(nc, config, log);
  await worker.start();
  return worker;
});

/** `moonmind intake`: one intake replica. */
import { hostActor } from "../../src/actor-host.js";
import { Intake } from "./intake.js";

await hostActor("intake", async ({ nc, config, log }) => {
  const intake = new Intake(nc, config, log);
  await intake.start();
  return intake;
});

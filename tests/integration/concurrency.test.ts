/** A worker runs up to MOONMIND_WORKER_CONCURRENCY jobs at once, and never more. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Worker } from "../../actors/worker/worker.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack({ MOONMIND_WORKER_CONCURRENCY: "2" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-two");
});

afterAll(() => stopAll(events, worker, intake, stack));

describe("worker concurrency", () => {
  it("runs two jobs side by side with concurrency 2, and a third only when one is done", async () => {
    // Affinity keys spread the three over shards so that every pull loop has work.
    for (const [i, key] of ["a", "b", "c"].entries()) {
      await stack.js.publish(
        SUBJECTS.submit,
        JSON.stringify({ id: `par-${i}`, repository: stack.repo, affinityKey: key, instructions: "sleep 1500\nsay ok" }),
      );
    }
    await Promise.all([0, 1, 2].map((i) => events.waitFor((e) => e.jobId === `par-${i}` && e.type === "succeeded", 20_000)));
    // Replay the starts and ends in order: at most two jobs were ever running, and two did overlap.
    let running = 0;
    let peak = 0;
    for (const e of events.events.filter((e) => e.jobId.startsWith("par-"))) {
      if (e.type === "started") peak = Math.max(peak, ++running);
      if (e.type === "succeeded") running--;
    }
    expect(peak).toBe(2);
  });
});

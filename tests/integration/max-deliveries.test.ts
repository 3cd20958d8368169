/**
 * A message that runs out of deliveries (workers dying before they settle it) is not left in the
 * work queue forever: the run is dead-lettered, the job copied to DEAD, the message deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { route } from "../../src/routing.js";
import { DeadLetterSchema } from "../../src/schemas/events.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack({ MOONMIND_MAX_DELIVER: "2" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

describe("a job out of deliveries", () => {
  it("is dead-lettered and removed from the queue", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "md-1", repository: "org/repo", instructions: "x" }));
    await events.waitFor((e) => e.jobId === "md-1" && e.type === "routed");
    // Two "workers" take the job and die without settling it: ack wait (2 s) runs out twice.
    const consumer = await stack.js.consumers.get("JOBS", route("codex", "org/repo", 3).consumer);
    for (let i = 0; i < 2; i++) {
      const m = await consumer.next({ expires: 10_000 });
      expect(m?.info.deliveryCount).toBe(i + 1);
    }
    // The server notices the exhausted message when a worker next asks for work.
    expect(await consumer.next({ expires: 5_000 })).toBeNull();
    const failed = await events.waitFor((e) => e.jobId === "md-1" && e.type === "failed", 15_000);
    expect(failed).toMatchObject({ state: "dead_letter", error: { code: "MAX_DELIVERIES" } });
    expect((await stack.runs.get("md-1"))!.record).toMatchObject({ state: "dead_letter", result: { outcome: "FAILED" } });
    const dead = DeadLetterSchema.parse((await stack.jsm.streams.getMessage("DEAD", { last_by_subj: "dead.jobs.md-1" }))!.json());
    expect(dead).toMatchObject({ stage: "worker", original: { id: "md-1", repository: "org/repo" } });
    expect((await stack.jsm.streams.info("JOBS")).state.messages).toBe(0);
  });
});

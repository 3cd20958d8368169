/**
 * Intake outlives its consumer: when the consumer fails under it (deleted and provisioned again,
 * or the server restarted), it consumes again instead of dying of an unhandled rejection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { provision } from "../../src/nats/provision.js";
import { persist } from "../../src/runs/persist.js";
import { INTAKE_CONSUMER, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack();
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const submit = (id: string) => stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: "org/repo", instructions: "x" }));

describe("intake", () => {
  it("routes again after its consumer was deleted and provisioned anew", async () => {
    await submit("before-delete");
    await events.waitFor((e) => e.jobId === "before-delete" && e.type === "routed");
    await stack.jsm.consumers.delete(STREAMS.jobs, INTAKE_CONSUMER);
    await provision(stack.nc, stack.config());
    await submit("after-delete");
    await events.waitFor((e) => e.jobId === "after-delete" && e.type === "routed", 20_000);
  });

  it("routes again after a server restart", async () => {
    await stack.stopServer();
    await stack.startServer();
    // This test's own connection may still be reconnecting: the submission is retried like any write.
    await persist("a submission", () => submit("after-restart"), { deadlineMs: 20_000 });
    expect(await events.waitFor((e) => e.jobId === "after-restart" && e.type === "routed", 30_000)).toMatchObject({ type: "routed" });
  });
});

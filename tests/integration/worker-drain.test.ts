/** `worker.<id>.drain`: the running job finishes on this worker, and it takes no new one. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack({ MOONMIND_CODEX_SHARDS: "1", MOONMIND_STOP_GRACE_MS: "20000", MOONMIND_WORKER_CONCURRENCY: "2" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-drain");
});

afterAll(() => stopAll(events, worker, intake, stack));

describe("worker.<id>.drain", () => {
  it("lets the running job finish here and takes no new one", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "drain-running", repository: stack.repo, instructions: "sleep 1500\nsay finished" }));
    await events.waitFor((e) => e.jobId === "drain-running" && e.type === "started");
    const reply = await stack.nc.request("worker.w-drain.drain", "", { timeout: 5_000 });
    expect(reply.json()).toEqual({ workerId: "w-drain", draining: true });
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "drain-later", repository: stack.repo, instructions: "say later" }));
    await worker.stopped();
    expect(events.events.find((e) => e.jobId === "drain-running" && e.type === "succeeded")).toMatchObject({ workerId: "w-drain" });
    expect(events.events.filter((e) => e.jobId === "drain-later" && e.type === "claimed")).toEqual([]);
    expect((await stack.runs.get("drain-later"))!.record.state).toBe("queued");
  });
});

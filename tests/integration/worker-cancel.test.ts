/**
 * Cancelling a running job through `worker.<id>.cancel`: the agent's whole process tree — a child
 * that ignores SIGTERM included — is gone before the run is recorded `cancelled`.
 */
import { readFileSync, readdirSync } from "node:fs";
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
  stack = await startStack({ MOONMIND_KILL_GRACE_MS: "1000" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-cancel");
});

afterAll(() => stopAll(events, worker, intake, stack));

const withTag = (tag: string) =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(tag);
      } catch {
        return false;
      }
    });

describe("worker.<id>.cancel", () => {
  it("stops the agent's whole tree, then records the run cancelled (outcome CANCELLED)", async () => {
    const tag = `stubborn-${process.pid}-${Date.now()}`;
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "cancel-running", repository: stack.repo, instructions: `stubborn-child ${tag}\nsleep 60000` }));
    await events.waitFor((e) => e.jobId === "cancel-running" && e.type === "started");
    const reply = await stack.nc.request("worker.w-cancel.cancel", JSON.stringify({ jobId: "cancel-running", reason: "not needed" }), { timeout: 5_000 });
    expect(reply.json()).toEqual({ workerId: "w-cancel", jobId: "cancel-running", accepted: true });
    const cancelled = await events.waitFor((e) => e.jobId === "cancel-running" && e.type === "cancelled", 15_000);
    // The event comes only after every process of the run is gone.
    expect(withTag(tag)).toEqual([]);
    expect(cancelled).toMatchObject({ reason: "not needed" });
    expect((await stack.runs.get("cancel-running"))!.record).toMatchObject({ state: "cancelled", result: { outcome: "CANCELLED" } });
  });

  it.each([
    ["not JSON", "{nope", /body must be JSON/],
    ["an unknown field", JSON.stringify({ jobId: "x", force: true }), /Unrecognized key|unknown|force/i],
    ["a job not running here", JSON.stringify({ jobId: "nowhere" }), /not running on worker w-cancel/],
  ])("answers %s with a service error", async (_, body, why) => {
    const reply = await stack.nc.request("worker.w-cancel.cancel", body, { timeout: 5_000 });
    expect(reply.headers?.get("Nats-Service-Error-Code")).toMatch(/^40[04]$/);
    expect(reply.headers?.get("Nats-Service-Error")).toMatch(why);
  });

  it("answers a preflight for a runtime it does not serve with 404, not an empty success", async () => {
    const reply = await stack.nc.request("worker.w-cancel.preflight", JSON.stringify({ runtime: "gemini" }), { timeout: 5_000 });
    expect(reply.headers?.get("Nats-Service-Error-Code")).toBe("404");
    const bad = await stack.nc.request("worker.w-cancel.preflight", JSON.stringify({ runtime: "cobol" }), { timeout: 5_000 });
    expect(bad.headers?.get("Nats-Service-Error-Code")).toBe("400");
  });
});

/** A worker running as root starts agent CLIs as MOONMIND_AGENT_USER, and still diffs their work. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Worker } from "../../actors/worker/worker.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";
import { chmod } from "node:fs/promises";

const asRoot = process.getuid?.() === 0;
let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;

beforeAll(async () => {
  if (!asRoot) return;
  stack = await startStack({ MOONMIND_AGENT_USER: "nobody" });
  // The checkout under the temp dir must be reachable by the agent user.
  await chmod(stack.dir, 0o755);
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-user");
});

afterAll(() => stopAll(events, worker, intake, stack));

describe("agent user", () => {
  // Switching users needs root; elsewhere the worker runs agents as itself and there is nothing to show.
  it.runIf(asRoot)("runs the CLI as MOONMIND_AGENT_USER in a workspace that user owns", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "user-1", repository: stack.repo, instructions: "write OWNED.md: by nobody\nsay-uid" }));
    const done = await events.waitFor((e) => e.jobId === "user-1" && (e.type === "succeeded" || e.type === "failed"));
    expect(done).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY", summary: "uid=65534" });
  });
});

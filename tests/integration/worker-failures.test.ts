/**
 * Workers that die or stop mid-job: nothing is lost and nothing runs twice.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { spawnActor } from "../../src/cli/commands/actor.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  // The stand-in keeps its marker files outside the workspace, where a sandboxed agent cannot write.
  stack = await startStack({ MOONMIND_WORKER_SHARDS: "0-2", MOONMIND_AGENT_SANDBOX: "none" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const newWorker = (id: string, env: Record<string, string> = {}) => startWorker(stack, id, env);

describe("a worker killed with SIGKILL mid-job", () => {
  it("loses nothing: the job is redelivered to another worker and completes exactly once", async () => {
    const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-doomed" && e.type === "online");
    const doomed = spawnActor("worker", { ...process.env, ...stack.env, MOONMIND_WORKER_ID: "w-doomed" }, { stdio: "pipe" });
    const exited = new Promise<NodeJS.Signals | null>((r) => doomed.once("exit", (_code, signal) => r(signal)));
    await online;

    const marker = join(stack.dir, "crash-marker");
    await stack.js.publish(
      SUBJECTS.submit,
      JSON.stringify({ id: "crash-1", repository: stack.repo, instructions: `sleep-once 60000 ${marker}\nwrite RESULT.md: done` }),
    );
    await events.waitFor((e) => e.jobId === "crash-1" && e.type === "started");
    // Mid-job: the agent is running (it wrote its marker), not merely spawned.
    await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 10_000, interval: 20 });
    doomed.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");

    const rescuer = await newWorker("w-rescuer");
    try {
      const done = await events.waitFor((e) => e.jobId === "crash-1" && (e.type === "succeeded" || e.type === "failed"), 30_000);
      expect(done).toMatchObject({ type: "succeeded", workerId: "w-rescuer", attempt: 2, outcome: "CHANGES_READY" });
    } finally {
      await rescuer.stop();
    }
    const mine = events.events.filter((e) => e.jobId === "crash-1");
    expect(mine.filter((e) => e.type === "succeeded")).toHaveLength(1);
    expect(mine.filter((e) => e.type === "claimed").map((e) => (e as { workerId: string }).workerId)).toEqual(["w-doomed", "w-rescuer"]);
    const run = (await stack.runs.get("crash-1"))!.record;
    expect(run).toMatchObject({ state: "succeeded", workerId: "w-rescuer", attempts: 2 });
    // Settled and gone: no copy of the job is left in the work queue.
    expect((await stack.jsm.streams.info("JOBS")).state.messages).toBe(0);
  });
});

describe("a worker stopping gracefully", () => {
  it("lets a short job finish before it stops", async () => {
    const worker = await newWorker("w-patient", { MOONMIND_STOP_GRACE_MS: "20000" });
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "short-1", repository: stack.repo, instructions: "sleep 1000\nsay finished" }));
    await events.waitFor((e) => e.jobId === "short-1" && e.type === "started");
    await worker.stop();
    const done = events.events.find((e) => e.jobId === "short-1" && e.type === "succeeded");
    expect(done).toMatchObject({ workerId: "w-patient", attempt: 1 });
  });

  it("hands a long job back without spending its attempt, and another worker runs it", async () => {
    const worker = await newWorker("w-leaving", { MOONMIND_STOP_GRACE_MS: "200" });
    const marker = join(stack.dir, "stop-marker");
    await stack.js.publish(
      SUBJECTS.submit,
      JSON.stringify({ id: "long-1", repository: stack.repo, instructions: `sleep-once 60000 ${marker}\nsay finished` }),
    );
    await events.waitFor((e) => e.jobId === "long-1" && e.type === "started");
    await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 10_000, interval: 20 }); // the agent runs
    await worker.stop();
    const handedBack = (await stack.runs.get("long-1"))!.record;
    expect(handedBack).toMatchObject({ state: "queued", attempts: 0, lastError: { code: "WORKER_STOPPING" } });
    expect(handedBack.workerId).toBeUndefined();

    const next = await newWorker("w-next");
    try {
      const done = await events.waitFor((e) => e.jobId === "long-1" && e.type === "succeeded", 20_000);
      expect(done).toMatchObject({ workerId: "w-next", attempt: 1 });
    } finally {
      await next.stop();
    }
  });
});

describe("a worker starting where a dead one left workspaces", () => {
  it("removes the workspaces, and the login copies in them, of runs no live worker holds", async () => {
    const workdir = stack.config().workdir;
    // A run a live worker holds keeps its workspace.
    const alive = await newWorker("w-holder");
    const { newRunRecord } = await import("../../src/runs/record.js");
    const { route } = await import("../../src/routing.js");
    const { JobRequestSchema } = await import("../../src/schemas/job.js");
    const job = JobRequestSchema.parse({ id: "held-job", type: "task", repository: stack.repo, targetRuntime: "codex", task: { instructions: "x" } });
    await stack.runs.create({ ...newRunRecord(job, route("codex", stack.repo, 3), new Date().toISOString()), state: "running", workerId: "w-holder", attempts: 1 });
    const held = join(workdir, "held-job-d4e5f6");
    await mkdir(held, { recursive: true });
    const leftover = join(workdir, "gone-job-a1b2c3");
    await mkdir(join(leftover, "home"), { recursive: true });
    await writeFile(join(leftover, "home", "auth.json"), "{}");

    const next = await newWorker("w-sweeper");
    try {
      expect(existsSync(leftover)).toBe(false);
      expect(existsSync(held)).toBe(true);
    } finally {
      await stopAll(next, alive);
    }
  });
});

/**
 * A worker and its logins (stand-in codex): strict start-up fails with the remedy (exit 78),
 * non-strict starts paused and resumes when a login appears, and a job whose output shows the
 * login expired goes back to the queue, pauses the login, and runs once an operator re-checks.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { execa } from "execa";
import { Intake } from "../../actors/intake/intake.js";
import type { PreflightReply } from "../../actors/worker/control.js";
import { Kvm } from "@nats-io/kv";
import type { WorkerRecord } from "../../src/schemas/events.js";
import { BUCKETS, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;
const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");

beforeAll(async () => {
  // The stand-in keeps its marker files outside the workspace, where a sandboxed agent cannot write.
  stack = await startStack({ MOONMIND_AUTH_TTL_MS: "1000", MOONMIND_AGENT_SANDBOX: "none" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const emptyVolume = () => join(stack.dir, "empty-volume");

describe("start-up", () => {
  it("exits 78 with the remedy when a required login is missing (the real codex CLI checks it)", async () => {
    await mkdir(emptyVolume(), { recursive: true });
    const r = await execa(process.execPath, [BIN, "worker"], {
      env: { ...stack.env, MOONMIND_CODEX_BIN: "", CODEX_VOLUME_PATH: emptyVolume(), MOONMIND_WORKER_ID: "w-strict", MOONMIND_LOG_LEVEL: "silent" },
      reject: false,
      timeout: 60_000,
      stdin: "ignore",
    });
    expect(r.exitCode).toBe(78);
    expect(r.stderr).toMatch(/codex login status failed for volume codex_auth_volume \(.*Not logged in/);
    expect(r.stderr).toMatch(/tools\/auth-codex-volume\.sh/);
    expect(r.stderr).toMatch(/MOONMIND_STARTUP_STRICT=false/);
  });

  it("starts paused when not strict, keeps jobs waiting, and resumes when the login appears", async () => {
    const volume = join(stack.dir, "late-volume");
    const paused = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-late" && e.type === "paused");
    const worker = await startWorker(stack, "w-late", { CODEX_VOLUME_PATH: volume, MOONMIND_STARTUP_STRICT: "false" });
    try {
      expect(worker.state).toBe("paused");
      expect(await paused).toMatchObject({ runtime: "codex", reason: expect.stringMatching(/auth-codex-volume/) });

      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "late-1", repository: stack.repo, instructions: "say late" }));
      await events.waitFor((e) => e.jobId === "late-1" && e.type === "routed");
      expect((await stack.runs.get("late-1"))!.record.state).toBe("queued");

      const resumed = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-late" && e.type === "resumed");
      await mkdir(volume, { recursive: true });
      await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }));
      await resumed;
      const done = await events.waitFor((e) => e.jobId === "late-1" && e.type === "succeeded");
      expect(done).toMatchObject({ workerId: "w-late", attempt: 1 });
    } finally {
      await worker.stop();
    }
  });
});

describe("a job whose login expired", () => {
  it("goes back to the queue without spending an attempt, pauses the login, and runs after an operator's re-check", async () => {
    const worker = await startWorker(stack, "w-exp", { MOONMIND_WORKER_TTL_MS: "1000" });
    try {
      const paused = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-exp" && e.type === "paused");
      const marker = join(stack.dir, "expire-marker");
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "exp-1", repository: stack.repo, instructions: `expire-once ${marker}\nsay recovered` }));
      expect(await paused).toMatchObject({ reason: expect.stringMatching(/refresh token was already used/) });
      // The login pauses as soon as the output is read; the run record follows when the job settles.
      await vi.waitFor(async () => {
        expect((await stack.runs.get("exp-1"))!.record).toMatchObject({ state: "queued", attempts: 0, lastError: { code: "AUTH_EXPIRED" } });
      });

      // `login status` still passes on the same credentials: a timed re-check does not believe it.
      await waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-exp" && e.type === "preflight" && e.status === "failed");
      expect(worker.state).toBe("paused");

      // The operator restored the login and asks the worker to look again.
      const resumed = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-exp" && e.type === "resumed");
      const reply = await stack.nc.request("worker.w-exp.preflight", "", { timeout: 30_000 });
      const body = reply.json<PreflightReply>();
      expect(body.results).toEqual([expect.objectContaining({ runtime: "codex", state: "ready", status: "passed" })]);
      await resumed;
      const done = await events.waitFor((e) => e.jobId === "exp-1" && e.type === "succeeded", 30_000);
      expect(done).toMatchObject({ attempt: 1, workerId: "w-exp" });
      expect(events.events.filter((e) => e.jobId === "exp-1" && e.type === "failed")).toHaveLength(0);
    } finally {
      await worker.stop();
    }
  });
});

describe("a job that meets the plan's usage limit", () => {
  it("goes back without spending an attempt, the login waits out the limit, resumes by itself, and the job succeeds", async () => {
    // The stand-in words it as codex does with no reset time: the bounded backoff applies.
    const worker = await startWorker(stack, "w-lim", { MOONMIND_WORKER_TTL_MS: "1000", MOONMIND_USAGE_LIMIT_BACKOFF_MS: "6000" });
    try {
      const paused = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-lim" && e.type === "paused");
      const resumed = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-lim" && e.type === "resumed", 30_000);
      const marker = join(stack.dir, "limit-marker");
      const submittedAt = Date.now();
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "lim-1", repository: stack.repo, instructions: `limit-once ${marker}\nsay after the limit` }));
      const pause = await paused;
      expect(pause).toMatchObject({ runtime: "codex", reason: expect.stringMatching(/^usage limit until \S+ for volume codex_auth_volume \(You’ve hit your usage limit.*checked again in 6 s\).*resumes by itself/) });
      await vi.waitFor(async () => {
        expect((await stack.runs.get("lim-1"))!.record).toMatchObject({ state: "queued", attempts: 0, lastError: { code: "USAGE_LIMIT" } });
      });
      expect(worker.state).toBe("paused");
      // What ops.shards and the live view read: the login's state on the worker's record.
      const workers = await new Kvm(stack.nc).open(BUCKETS.workers);
      await vi.waitFor(async () => {
        const record = (await workers.get("w-lim"))!.json<WorkerRecord>();
        expect(Object.values(record.auth)[0]).toMatchObject({ state: "limited", message: expect.stringMatching(/usage limit until/) });
      });

      // No operator: the login comes back once the limit has passed, and the job runs.
      await resumed;
      expect(Date.now() - submittedAt).toBeGreaterThanOrEqual(6_000);
      const done = await events.waitFor((e) => e.jobId === "lim-1" && e.type === "succeeded", 30_000);
      expect(done).toMatchObject({ attempt: 1, workerId: "w-lim" });
      expect(events.events.filter((e) => e.jobId === "lim-1" && e.type === "failed")).toHaveLength(0);
    } finally {
      await worker.stop();
    }
  });
});

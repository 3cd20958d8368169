/**
 * Why a job waits stays true while it waits (src/ops/waiting-monitor.ts, in the ops actor): the
 * reason changes as workers come and go, a job handed back by a draining worker or queued again
 * by a retry says why it waits, shard health counts and flags it, and a cancel clears it.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { Ops } from "../../actors/ops/ops.js";
import type { Worker } from "../../actors/worker/worker.js";
import { connectNats } from "../../src/nats/connect.js";
import type { JobEvent } from "../../src/schemas/events.js";
import type { ShardsReply } from "../../src/schemas/ops.js";
import { OPS, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { quietLog, startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let ops: Ops;
let events: EventLog;
const SUBJECT = "jobs.codex.shard.0";

beforeAll(async () => {
  stack = await startStack({ MOONMIND_CODEX_SHARDS: "1", MOONMIND_STOP_GRACE_MS: "300" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  ops = new Ops(await connectNats({ servers: stack.server.url, name: "ops" }), stack.config(), quietLog);
  await ops.start();
}, 60_000);

afterAll(() => stopAll(events, ops, intake, stack));

const submit = (body: object) => stack.js.publish(SUBJECTS.submit, JSON.stringify({ repository: stack.repo, ...body }));
const waitings = (id: string) => events.events.filter((e): e is Extract<JobEvent, { type: "waiting" }> => e.jobId === id && e.type === "waiting");
const shard = async () => {
  const m = await stack.nc.request(OPS.shards, "", { timeout: 10_000 });
  return (m.json() as ShardsReply).shards.find((s) => s.subject === SUBJECT)!;
};

async function pausedWorker(id: string): Promise<Worker> {
  const empty = join(stack.dir, `empty-${id}`);
  await mkdir(empty, { recursive: true });
  return startWorker(stack, id, { CODEX_VOLUME_PATH: empty, MOONMIND_STARTUP_STRICT: "false" });
}

describe("the waiting reason", () => {
  it("follows the workers: no worker, then a paused one; a cancel clears it", async () => {
    await submit({ id: "wm-1", instructions: "say hi" });
    await vi.waitFor(() => expect(waitings("wm-1").map((w) => w.reason)).toEqual([expect.stringContaining(`no worker serves ${SUBJECT}`)]), { timeout: 2_000, interval: 20 });

    const paused = await pausedWorker("wm-paused");
    try {
      await vi.waitFor(() => expect(waitings("wm-1")).toHaveLength(2), { timeout: 3_000, interval: 20 });
      expect(waitings("wm-1")[1]!.reason).toMatch(new RegExp(`^no worker serving ${SUBJECT.replaceAll(".", "\\.")} is ready — .*codex_auth_volume`));
      expect((await stack.runs.get("wm-1"))!.record.waiting?.reason).toBe(waitings("wm-1")[1]!.reason);
      const cancel = await stack.nc.request(OPS.runsCancel, JSON.stringify({ runId: "wm-1" }), { timeout: 10_000 });
      expect(cancel.json()).toMatchObject({ state: "cancelled" });
      expect((await stack.runs.get("wm-1"))!.record.waiting).toBeUndefined();
      expect(waitings("wm-1")).toHaveLength(2); // once per reason, not once a check
    } finally {
      await paused.stop();
    }
  });

  it("a job handed back by a draining worker says why it waits, and its shard counts and flags it", async () => {
    const worker = await startWorker(stack, "wm-drain");
    await submit({ id: "wm-2", instructions: "sleep 20000\nsay late" });
    await events.waitFor((e) => e.jobId === "wm-2" && e.type === "started", 15_000);
    await worker.stop("drain"); // its stop grace (300 ms) runs out: the job goes back to the queue
    expect((await stack.runs.get("wm-2"))!.record.state).toBe("queued");
    const waiting = await events.waitFor((e) => e.jobId === "wm-2" && e.type === "waiting", 3_000);
    expect((waiting as { reason: string }).reason).toContain(`no worker serves ${SUBJECT}`);
    const s = await shard();
    expect(s.queued).toBe(1);
    expect(s.flag).toContain(`no worker serves ${SUBJECT}`);

    const next = await startWorker(stack, "wm-next");
    try {
      expect(await events.waitFor((e) => e.jobId === "wm-2" && e.type === "claimed" && e.workerId === "wm-next", 15_000)).toBeDefined();
      expect((await stack.runs.get("wm-2"))!.record.waiting).toBeUndefined();
      await stack.nc.request(OPS.runsCancel, JSON.stringify({ runId: "wm-2" }), { timeout: 10_000 });
      await events.waitFor((e) => e.jobId === "wm-2" && e.type === "cancelled", 15_000);
    } finally {
      await next.stop();
    }
  });

  it("a run queued again by ops.runs.retry with no worker to take it says why it waits", async () => {
    const worker = await startWorker(stack, "wm-fail");
    try {
      await submit({ id: "wm-3", instructions: "fail", maxAttempts: 1 });
      await events.waitFor((e) => e.jobId === "wm-3" && e.type === "failed", 15_000);
    } finally {
      await worker.stop();
    }
    const retry = await stack.nc.request(OPS.runsRetry, JSON.stringify({ runId: "wm-3" }), { timeout: 10_000 });
    expect(retry.json()).toMatchObject({ state: "queued" });
    const waiting = await events.waitFor((e) => e.jobId === "wm-3" && e.type === "waiting", 3_000);
    expect((waiting as { reason: string }).reason).toContain(`no worker serves ${SUBJECT}`);
    expect((await shard()).flag).toBeDefined();
  });

  it("a stored preflight pass is not reused once no worker's login for the shard is ready", async () => {
    const worker = await startWorker(stack, "wm-ok");
    try {
      await submit({ id: "wm-4", instructions: "say hi" });
      await events.waitFor((e) => e.jobId === "wm-4" && e.type === "succeeded", 15_000);
    } finally {
      await worker.stop();
    }
    expect((await stack.runs.get("wm-4"))!.record.preflight?.status).toBe("passed");
    const paused = await pausedWorker("wm-paused-2");
    try {
      const m = await stack.nc.request(OPS.runsPreflight, JSON.stringify({ runId: "wm-4" }), { timeout: 20_000 });
      expect(m.json()).toMatchObject({ status: "failed", cached: false, workerId: "wm-paused-2" });
    } finally {
      await paused.stop();
    }
  });
});

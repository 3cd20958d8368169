/**
 * The `moonmind-ops` service on a real nats-server, with real intake and worker actors and the
 * stand-in codex: every endpoint through a real request (and as the nats CLI sends one), shard
 * health with pending jobs and a paused worker, cancel, retry, dead-letter replay, and service
 * errors for every kind of bad request, counted by `nats micro stats`.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Svcm } from "@nats-io/services";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Ops } from "../../actors/ops/ops.js";
import { Worker } from "../../actors/worker/worker.js";
import { connectNats } from "../../src/nats/connect.js";
import { route } from "../../src/routing.js";
import type { DeadListReply, DeadReplayReply, RunsCancelReply, RunsGetReply, RunsListReply, RunsPreflightReply, RunsRetryReply, ShardsReply, UsageReply, WorkersReply } from "../../src/schemas/ops.js";
import { OPS, SERVICES, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { quietLog, startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake | undefined;
let ops: Ops;
let worker: Worker | undefined;
let events: EventLog;
let subject: string;

beforeAll(async () => {
  stack = await startStack();
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  ops = new Ops(await connectNats({ servers: stack.server.url, name: "ops" }), stack.config(), quietLog);
  await ops.start();
  worker = await startWorker(stack, "w-ops");
  subject = route("codex", stack.repo, 3).subject;
}, 60_000);

afterAll(() => stopAll(events, worker, ops, intake, stack));

type Reply<T> = { ok: true; body: T } | { ok: false; code: number; description: string };

/** A request as any client sends it: `body` undefined is an empty payload, a string goes as is. */
async function call<T>(subj: string, body?: unknown): Promise<Reply<T>> {
  const payload = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  const m = await stack.nc.request(subj, payload, { timeout: 10_000 });
  const code = m.headers?.get("Nats-Service-Error-Code");
  if (code) return { ok: false, code: Number(code), description: m.headers?.get("Nats-Service-Error") ?? "" };
  return { ok: true, body: m.json() as T };
}

async function ok<T>(subj: string, body?: unknown): Promise<T> {
  const r = await call<T>(subj, body);
  if (!r.ok) throw new Error(`${subj} failed: ${r.code} ${r.description}`);
  return r.body;
}

const submit = (payload: Record<string, unknown>) => stack.js.publish(SUBJECTS.submit, JSON.stringify({ repository: stack.repo, ...payload }));
const finished = (id: string) => events.waitFor((e) => e.jobId === id && ["succeeded", "failed", "cancelled"].includes(e.type), 20_000);

describe("ops.workers and ops.shards", () => {
  it("lists the live worker with its runtimes, shards, login and uptime (empty body, as `nats req` sends)", async () => {
    // The record is refreshed by the worker's heartbeat: it says serving within one.
    const w = await vi.waitFor(async () => {
      const found = (await ok<WorkersReply>(OPS.workers)).workers.find((x) => x.workerId === "w-ops");
      expect(found?.state).toBe("serving");
      return found;
    });
    expect(w).toMatchObject({ runtimes: ["codex"], shards: ["codex-shard-0", "codex-shard-1", "codex-shard-2"], state: "serving", live: true });
    expect(w!.auth["codex:codex_auth_volume"]).toMatchObject({ state: "ready", status: "passed" });
    expect(w!.uptimeMs).toBeGreaterThanOrEqual(0);
  });

  it("reports every runtime's shards with depth, the bound worker and its login", async () => {
    const r = await ok<ShardsReply>(OPS.shards, "{}");
    expect(r.shards.map((s) => s.consumer)).toEqual(["codex-shard-0", "codex-shard-1", "codex-shard-2", "claude-shard-0", "gemini-shard-0"]);
    const s = r.shards.find((x) => x.subject === subject)!;
    expect(s).toMatchObject({ pending: 0, ackPending: 0, volumeName: "codex_auth_volume" });
    expect(s.workers).toEqual([expect.objectContaining({ workerId: "w-ops", ready: true, login: "codex:codex_auth_volume", auth: expect.objectContaining({ state: "ready" }) })]);
    expect(s.flag).toBeUndefined();
    expect(r.shards.find((x) => x.consumer === "claude-shard-0")!.workers).toEqual([]);
    // Filtered by runtime.
    expect((await ok<ShardsReply>(OPS.shards, { runtime: "claude" })).shards.map((x) => x.consumer)).toEqual(["claude-shard-0"]);
  });
});

describe("ops.runs.list, ops.runs.get and ops.runs.preflight", () => {
  it("lists runs newest first, filtered, and returns one with its history", async () => {
    await submit({ id: "ops-run-1", instructions: "say one" });
    expect((await finished("ops-run-1")).type).toBe("succeeded");
    await submit({ id: "ops-run-2", instructions: "say two" });
    expect((await finished("ops-run-2")).type).toBe("succeeded");

    const all = await ok<RunsListReply>(OPS.runsList);
    expect(all.runs.slice(0, 2).map((r) => r.jobId)).toEqual(["ops-run-2", "ops-run-1"]);
    expect(all.runs[0]).toMatchObject({ state: "succeeded", runtime: "codex", subject, attempts: 1, outcome: "NO_CHANGES" });
    expect((await ok<RunsListReply>(OPS.runsList, { limit: 1 })).runs.map((r) => r.jobId)).toEqual(["ops-run-2"]);
    expect((await ok<RunsListReply>(OPS.runsList, { state: "failed" })).runs).toEqual([]);
    expect((await ok<RunsListReply>(OPS.runsList, { repository: stack.repo, runtime: "codex" })).total).toBeGreaterThanOrEqual(2);

    const got = await ok<RunsGetReply>(OPS.runsGet, { runId: "ops-run-1" });
    expect(got.record).toMatchObject({ jobId: "ops-run-1", state: "succeeded" });
    const types = got.events.map((e) => (e.event as { type: string }).type);
    expect([types[0], types[1], types.at(-1)]).toEqual(["accepted", "routed", "succeeded"]);
    expect(types).toEqual(expect.arrayContaining(["claimed", "preflight", "started"]));
    expect(got.events.map((e) => e.seq)).toEqual([...got.events.map((e) => e.seq)].sort((a, b) => a - b));
    expect(got.truncated).toBe(false);
  });

  it("re-runs the run's preflight on a worker serving its shard, records it, and reuses a fresh one", async () => {
    const forced = await ok<RunsPreflightReply>(OPS.runsPreflight, { runId: "ops-run-1", forceRefresh: true });
    expect(forced).toMatchObject({ runId: "ops-run-1", subject, volumeName: "codex_auth_volume", status: "passed", workerId: "w-ops", cached: false });
    expect((await stack.runs.get("ops-run-1"))!.record.preflight).toEqual({ status: "passed", message: forced.message, checkedAt: forced.checkedAt, volume: "codex_auth_volume" });
    const reused = await ok<RunsPreflightReply>(OPS.runsPreflight, { runId: "ops-run-1" });
    expect(reused).toMatchObject({ cached: true, checkedAt: forced.checkedAt, status: "passed" });
  });
});

describe("with no ready worker", () => {
  it("flags the shard with pending jobs: first no worker at all, then a paused one with its login's remedy", async () => {
    await worker!.stop();
    worker = undefined;
    await submit({ id: "ops-wait-1", instructions: "say waited" });
    await events.waitFor((e) => e.jobId === "ops-wait-1" && e.type === "routed");
    let s = (await ok<ShardsReply>(OPS.shards)).shards.find((x) => x.subject === subject)!;
    expect(s.pending).toBe(1);
    expect(s.workers).toEqual([]);
    expect(s.oldestWaitingMs).toBeGreaterThanOrEqual(0);
    expect(s.flag).toBe(`no worker serves ${subject}: start one with MOONMIND_WORKER_RUNTIMES=codex`);

    const empty = join(stack.dir, "codex-auth-empty");
    await mkdir(empty, { recursive: true });
    worker = await startWorker(stack, "w-paused", { CODEX_VOLUME_PATH: empty, MOONMIND_STARTUP_STRICT: "false" });
    await vi.waitFor(async () => {
      s = (await ok<ShardsReply>(OPS.shards)).shards.find((x) => x.subject === subject)!;
      expect(s.workers.map((w) => w.workerId)).toEqual(["w-paused"]);
    }, { timeout: 10_000, interval: 200 });
    expect(s.pending).toBe(1);
    expect(s.workers[0]).toMatchObject({ ready: false, auth: { state: "unauthenticated" } });
    expect(s.flag).toMatch(new RegExp(`^no worker serving ${subject.replaceAll(".", "\\.")} is ready — .*codex_auth_volume`));
  });

  it("cancels a queued job at once; it never starts, even once a worker serves its shard", async () => {
    const r = await ok<RunsCancelReply>(OPS.runsCancel, { runId: "ops-wait-1", reason: "not needed" });
    expect(r).toEqual({ runId: "ops-wait-1", state: "cancelled" });
    expect((await stack.runs.get("ops-wait-1"))!.record).toMatchObject({ state: "cancelled", attempts: 0, result: { outcome: "CANCELLED", summary: "not needed" } });
    expect(events.events.find((e) => e.jobId === "ops-wait-1" && e.type === "cancelled")).toMatchObject({ reason: "not needed" });

    await worker!.stop();
    worker = await startWorker(stack, "w-ops");
    await submit({ id: "ops-after-cancel", instructions: "say after" });
    expect((await finished("ops-after-cancel")).type).toBe("succeeded");
    await vi.waitFor(async () => expect((await ok<ShardsReply>(OPS.shards)).shards.find((x) => x.subject === subject)!.pending).toBe(0));
    expect((await stack.runs.get("ops-wait-1"))!.record).toMatchObject({ state: "cancelled", attempts: 0 });
    const types = events.events.filter((e) => e.jobId === "ops-wait-1").map((e) => e.type);
    expect(types).toContain("cancelled");
    expect(types.filter((t) => ["claimed", "started", "succeeded", "failed"].includes(t))).toEqual([]);
  });
});

describe("ops.runs.retry", () => {
  it("queues a failed run again under its id with attempt + 1, its history kept", async () => {
    await submit({ id: "ops-retry-1", instructions: "fail", maxAttempts: 1 });
    await vi.waitFor(async () => expect(["failed", "dead_letter"]).toContain((await stack.runs.get("ops-retry-1"))?.record.state), { timeout: 20_000, interval: 200 });
    const first = (await stack.runs.get("ops-retry-1"))!.record;
    expect(first.attempts).toBe(1);

    const r = await ok<RunsRetryReply>(OPS.runsRetry, { runId: "ops-retry-1" });
    expect(r).toEqual({ runId: "ops-retry-1", state: "queued", attempt: 2, subject });
    await vi.waitFor(async () => {
      const rec = (await stack.runs.get("ops-retry-1"))!.record;
      expect(rec.attempts).toBe(2);
      expect(["failed", "dead_letter"]).toContain(rec.state);
    }, { timeout: 20_000, interval: 200 });
    const rec = (await stack.runs.get("ops-retry-1"))!.record;
    expect(rec).toMatchObject({ maxAttempts: 2, createdAt: first.createdAt, lastError: expect.objectContaining({ code: expect.any(String) }) });
    const stored = (await ok<RunsGetReply>(OPS.runsGet, { runId: "ops-retry-1" })).events.map((e) => e.event as { type: string });
    const history = stored.map((e) => e.type);
    expect(history.filter((t) => t === "claimed")).toHaveLength(2);
    // Queued again, not accepted again: one `accepted` (intake's), then `requeued` before the second claim.
    expect(history.filter((t) => t === "accepted")).toHaveLength(1);
    expect(stored.filter((e) => e.type === "requeued")).toEqual([
      { type: "requeued", at: expect.any(String), jobId: "ops-retry-1", attempt: 2, previousState: first.state, by: "ops", subject },
    ]);
    const requeuedAt = history.indexOf("requeued");
    expect(history.slice(0, requeuedAt).filter((t) => t === "claimed")).toHaveLength(1);
    expect(history.slice(requeuedAt).filter((t) => t === "claimed")).toHaveLength(1);
    // The live event is what `nats sub 'status.jobs.>'` and `moonmind watch` see.
    expect(events.events.find((e) => e.jobId === "ops-retry-1" && e.type === "requeued")).toMatchObject({ attempt: 2, previousState: first.state, by: "ops" });
  });

  it("refuses a run that is not failed, cancelled or dead-lettered", async () => {
    const r = await call(OPS.runsRetry, { runId: "ops-run-1" });
    expect(r).toEqual({ ok: false, code: 409, description: expect.stringContaining("ops-run-1 is succeeded") });
  });
});

describe("ops.dead.list and ops.dead.replay", () => {
  it("lists a rejected submission's dead letter and replays it, after the fix, through intake", async () => {
    // Intake that refuses local repositories: the job is dead-lettered.
    await intake!.stop();
    intake = await startIntake(stack, { MOONMIND_ALLOW_LOCAL_REPOS: "false" });
    await submit({ id: "ops-dead-1", instructions: "say replayed", metadata: { ticket: "T-1" } });
    await events.waitFor((e) => e.jobId === "ops-dead-1" && e.type === "rejected");
    const list = await vi.waitFor(async () => {
      const l = await ok<DeadListReply>(OPS.deadList, { limit: 5 });
      expect(l.letters[0]?.letter.jobId).toBe("ops-dead-1");
      return l;
    });
    expect(list.letters[0]!.letter).toMatchObject({ stage: "intake", subject: SUBJECTS.submit, reason: expect.any(String) });

    // The fix: an intake that accepts them. Replay goes through intake again under a new id.
    await intake!.stop();
    intake = await startIntake(stack);
    const replay = await ok<DeadReplayReply>(OPS.deadReplay, { jobId: "ops-dead-1" });
    expect(replay).toMatchObject({ newJobId: "ops-dead-1-replay-1", letter: { seq: list.letters[0]!.seq, letter: { jobId: "ops-dead-1" } } });
    expect((await finished("ops-dead-1-replay-1")).type).toBe("succeeded");
    const run = (await stack.runs.get("ops-dead-1-replay-1"))!.record;
    expect(run.request.metadata).toMatchObject({ ticket: "T-1", replayOf: { jobId: "ops-dead-1", deadSeq: list.letters[0]!.seq } });

    // By sequence too; the next replay gets the next free id.
    const again = await ok<DeadReplayReply>(OPS.deadReplay, { seq: list.letters[0]!.seq });
    expect(again.newJobId).toBe("ops-dead-1-replay-2");
    expect((await finished("ops-dead-1-replay-2")).type).toBe("succeeded");
  });
});

describe("bad requests", () => {
  async function errorCount(): Promise<number> {
    let n = 0;
    for await (const s of await new Svcm(stack.nc).client().stats(SERVICES.ops)) n += s.endpoints?.reduce((sum, e) => sum + e.num_errors, 0) ?? 0;
    return n;
  }

  it("get a service error with a code and a readable description, each counted by micro stats", async () => {
    const before = await errorCount();
    const cases: Array<[string, unknown, number, RegExp]> = [
      [OPS.runsGet, "not json", 400, /not JSON/],
      [OPS.runsGet, "[1,2]", 400, /JSON object, not an array/],
      [OPS.runsGet, undefined, 400, /field 'runId': is required/],
      [OPS.runsGet, { runId: "ops-run-1", extra: true }, 400, /'extra'/],
      [OPS.runsGet, { runId: "bad.id" }, 400, /field 'runId'/],
      [OPS.runsList, { limit: 0 }, 400, /field 'limit'/],
      [OPS.runsList, { state: "sleeping" }, 400, /field 'state'/],
      [OPS.shards, { runtime: "cobol" }, 400, /field 'runtime'/],
      [OPS.workers, { verbose: true }, 400, /'verbose'/],
      [OPS.deadReplay, { jobId: "a", seq: 1 }, 400, /exactly one of jobId or seq/],
      [OPS.deadReplay, {}, 400, /exactly one of jobId or seq/],
      [OPS.runsGet, { runId: "no-such-run" }, 404, /no run no-such-run/],
      [OPS.runsCancel, { runId: "no-such-run" }, 404, /no run no-such-run/],
      [OPS.runsRetry, { runId: "no-such-run" }, 404, /no run no-such-run/],
      [OPS.runsPreflight, { runId: "no-such-run" }, 404, /no run no-such-run/],
      [OPS.deadReplay, { jobId: "no-such-run" }, 404, /no dead letter for job no-such-run/],
      [OPS.deadReplay, { seq: 999_999 }, 404, /no dead letter at DEAD sequence 999999/],
      [OPS.runsCancel, { runId: "ops-run-1" }, 409, /ops-run-1 is succeeded already/],
    ];
    for (const [subj, body, code, description] of cases) {
      const r = await call(subj, body);
      expect(r, `${subj} ${JSON.stringify(body)}`).toEqual({ ok: false, code, description: expect.stringMatching(description) });
    }
    expect(await errorCount()).toBe(before + cases.length);
  });

  it("a preflight for a run no live worker serves is a 503 with the remedy", async () => {
    await worker!.stop();
    worker = undefined;
    const r = await call(OPS.runsPreflight, { runId: "ops-run-1", forceRefresh: true });
    expect(r).toEqual({ ok: false, code: 503, description: expect.stringContaining("start one with MOONMIND_WORKER_RUNTIMES=codex") });
    worker = await startWorker(stack, "w-ops");
  });
});

describe("ops.runs.cancel of a running job (needs the worker's worker.<id>.cancel endpoint)", () => {
  it("asks the owning worker, which stops the agent and records cancelled", async (ctx) => {
    let hasCancel = false;
    for await (const i of await new Svcm(stack.nc).client().info(SERVICES.worker)) {
      hasCancel ||= i.endpoints.some((e) => e.subject === "worker.w-ops.cancel");
    }
    if (!hasCancel) {
      console.warn("SKIPPED: worker.<id>.cancel is not on this worker yet (the worker side lands separately); this test runs once it does");
      ctx.skip();
    }
    await submit({ id: "ops-cancel-running", instructions: "sleep 20000\nsay too late" });
    await events.waitFor((e) => e.jobId === "ops-cancel-running" && e.type === "started");
    const r = await ok<RunsCancelReply>(OPS.runsCancel, { runId: "ops-cancel-running", reason: "operator says stop" });
    expect(r).toEqual({ runId: "ops-cancel-running", state: "cancelling", workerId: "w-ops" });
    const done = await events.waitFor((e) => e.jobId === "ops-cancel-running" && ["succeeded", "failed", "cancelled"].includes(e.type), 10_000);
    expect(done.type).toBe("cancelled");
    expect((await stack.runs.get("ops-cancel-running"))!.record).toMatchObject({ state: "cancelled", result: { outcome: "CANCELLED" } });
  });
});

describe("ops.usage", () => {
  it("sums what the agents reported per login, runtime and repository, and refuses a window it cannot read", async () => {
    await submit({ id: "ops-usage-1", instructions: "write U.md: u" });
    expect(await finished("ops-usage-1")).toMatchObject({ type: "succeeded", usage: { inputTokens: 10, outputTokens: 5 } });
    const byLogin = await ok<UsageReply>(OPS.usage, { since: "1h" });
    expect(byLogin.by).toBe("login");
    const login = byLogin.rows.find((r) => r.key === "codex:codex_auth_volume")!;
    // The stand-in reports 10 input and 5 output tokens per attempt.
    expect(login).toMatchObject({ inputTokens: 10 * login.attempts, cachedInputTokens: 0, outputTokens: 5 * login.attempts });
    expect(login.runs).toBeGreaterThanOrEqual(1);
    expect(byLogin.total).toMatchObject({ runs: expect.any(Number), inputTokens: byLogin.rows.reduce((a, r) => a + r.inputTokens, 0) });
    const byRepo = await ok<UsageReply>(OPS.usage, { since: "all", by: "repository" });
    expect(byRepo.rows.map((r) => r.key)).toContain(stack.repo);
    expect(byRepo.since).toBeUndefined();
    expect((await ok<UsageReply>(OPS.usage, { since: "1h", by: "runtime" })).rows.map((r) => r.key)).toEqual(["codex"]);
    const bad = await call<UsageReply>(OPS.usage, { since: "yesterday" });
    expect(bad).toMatchObject({ ok: false, code: 400 });
  });
});

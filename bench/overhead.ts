/**
 * Per-job overhead: everything a job costs besides its agent process, for an idle worker process
 * (concurrency 1) and the instant stand-in agent on a local repository, one job at a time.
 *
 *   total    the `routed` event's `at` → the job's message acked (this process sees the shard
 *            consumer's ack-pending count drop to 0, polled every 2 ms after `succeeded`)
 *   agent    the run record's `startedAt` → `agentFinishedAt` (the stand-in's process, from the
 *            record write just before its spawn to the worker reading its final JSONL line)
 *   overhead total − agent: claim, preflight, workspace, diff, artifacts, events, ack
 *
 * Beside it: the stand-in's process alone (spawn → exit from this process), and preflight
 * answered from the login's cached auth state next to a real `codex login status` spawn.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstreamManager, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Login } from "../actors/worker/logins.js";
import { loadConfig } from "../src/config.js";
import { connectNats } from "../src/nats/connect.js";
import { RunStore } from "../src/runs/store.js";
import { createAdapter } from "../src/runtimes/index.js";
import type { JobEvent } from "../src/schemas/events.js";
import { BUCKETS, STREAMS, SUBJECTS } from "../src/subjects.js";
import { FAKE_CODEX, startIntake, workerEnv, type BenchContext } from "./context.js";
import { spawnWorker, type WorkerProcess } from "./procs.js";
import { percentiles, until, type Percentiles } from "./stats.js";

export interface OverheadResult {
  jobs: number;
  /** routed → acked, minus the agent. */
  overhead: Percentiles;
  total: Percentiles;
  agent: Percentiles;
  /** p50 of each phase, in order, ms (from the events' and the record's timestamps). */
  phases: Record<string, number>;
  /** The stand-in agent's process spawned directly: spawn → exit. */
  agentAlone: Percentiles;
  preflightCached: Percentiles;
  preflightSpawn: Percentiles;
  preflightSpawnBin: string;
  /**
   * Follow-ups (`task.resume`) of those jobs, one each: preflight → workspace ready, which holds the
   * plan (the earlier record and patch read from the store), the fetch at its starting commit and the
   * worker's commit of its patch; beside the same phase of the plain jobs.
   */
  followUps: { jobs: number; workspace: Percentiles; plainWorkspace: Percentiles };
}

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : NaN);

/** `whenIdle` is given the worker once it serves, before its first job (the footprint is measured there). */
export async function benchOverhead(ctx: BenchContext, whenIdle?: (worker: WorkerProcess) => Promise<void>): Promise<OverheadResult> {
  const jobs = ctx.quick ? 8 : 100;
  ctx.progress.step("per-job overhead: the stand-in agent alone");
  const agentAlone = percentiles(await timeStandIn(ctx, ctx.quick ? 5 : 20));

  ctx.progress.step("per-job overhead: preflight");
  const { cached, spawnMs, bin } = await timePreflight(ctx);

  ctx.progress.step("per-job overhead: starting a worker process");
  const nc = await connectNats({ servers: ctx.url, name: "bench-overhead" });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const runs = new RunStore(await new Kvm(nc).open(BUCKETS.runs));
  const intake = await startIntake(ctx, nc, 3, "bench-overhead-intake");
  const worker = spawnWorker("bench-overhead", await workerEnv(ctx, "bench-overhead", { MOONMIND_WORKER_CONCURRENCY: "1" }), ctx.dir);
  const events = new Map<string, Partial<Record<JobEvent["type"], JobEvent>>>();
  const sub = nc.subscribe("status.jobs.*.*", {
    callback: (_e, m) => {
      const ev = m.json<JobEvent>();
      events.set(ev.jobId, { ...events.get(ev.jobId), [ev.type]: ev });
    },
  });
  const rows: Array<{ total: number; agent: number; phases: number[] }> = [];
  const followUpWorkspace: number[] = [];
  const followUps = ctx.quick ? 4 : 30;
  try {
    await worker.serving;
    await whenIdle?.(worker);
    ctx.progress.step("per-job overhead: jobs on an idle worker process");
    for (let i = 0; i < jobs; i++) {
      const id = `overhead-${i}`;
      await js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: ctx.repo, affinityKey: `o${i}`, instructions: `write OUT-${i}.md: x\nsay done` }));
      await until(() => events.get(id)?.succeeded !== undefined || events.get(id)?.failed !== undefined, `job ${id} to succeed`);
      const ev = events.get(id)!;
      if (!ev.succeeded) throw new Error(`bench: job ${id} failed: ${JSON.stringify(ev.failed)}`);
      const routed = ev.routed as Extract<JobEvent, { type: "routed" }>;
      // The message is gone from the consumer once acked: then the job has cost all it costs.
      for (;;) {
        const info = await jsm.consumers.info(STREAMS.jobs, routed.consumer);
        if (info.num_ack_pending === 0 && info.num_pending === 0) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      const ackedAt = Date.now();
      const r = (await runs.get(id))!.record;
      const t = {
        routed: ms(routed.at),
        claimed: ms(r.claimedAt),
        preflight: ms(ev.preflight?.at),
        started: ms(r.startedAt),
        agentFinished: ms(r.agentFinishedAt),
        finished: ms(r.finishedAt),
        succeeded: ms(ev.succeeded.at),
      };
      rows.push({
        total: ackedAt - t.routed,
        agent: t.agentFinished - t.started,
        phases: [t.claimed - t.routed, t.preflight - t.claimed, t.started - t.preflight, t.agentFinished - t.started, t.finished - t.agentFinished, t.succeeded - t.finished, ackedAt - t.succeeded],
      });
      ctx.progress.count(i + 1, jobs);
    }
    ctx.progress.step("per-job overhead: follow-ups of those jobs");
    for (let i = 0; i < followUps; i++) {
      const id = `overhead-follow-${i}`;
      await js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: ctx.repo, affinityKey: `o${i}`, task: { instructions: `write NEXT-${i}.md: y\nsay done`, resume: { runId: `overhead-${i}` } } }));
      await until(() => events.get(id)?.succeeded !== undefined || events.get(id)?.failed !== undefined, `follow-up ${id} to succeed`);
      const ev = events.get(id)!;
      if (!ev.succeeded) throw new Error(`bench: follow-up ${id} failed: ${JSON.stringify(ev.failed)}`);
      const r = (await runs.get(id))!.record;
      if (r.resumed?.from !== "patch") throw new Error(`bench: follow-up ${id} did not start from the earlier patch: ${JSON.stringify(r.resumed)}`);
      followUpWorkspace.push(ms(r.startedAt) - ms(ev.preflight?.at));
      ctx.progress.count(i + 1, followUps);
    }
  } finally {
    sub.unsubscribe();
    await worker.stop();
    await intake.stop();
    await nc.close();
  }
  const names = ["routed → claimed", "claimed → preflight event", "preflight → workspace ready (startedAt)", "agent (startedAt → agentFinishedAt)", "agentFinishedAt → record succeeded (diff, artifacts)", "record succeeded → succeeded event", "succeeded event → acked"];
  const phases = Object.fromEntries(names.map((n, k) => [n, percentiles(rows.map((r) => r.phases[k]!)).p50]));
  return {
    jobs,
    overhead: percentiles(rows.map((r) => r.total - r.agent)),
    total: percentiles(rows.map((r) => r.total)),
    agent: percentiles(rows.map((r) => r.agent)),
    phases,
    agentAlone,
    preflightCached: cached,
    preflightSpawn: percentiles(spawnMs),
    preflightSpawnBin: bin,
    followUps: { jobs: followUps, workspace: percentiles(followUpWorkspace), plainWorkspace: percentiles(rows.map((r) => r.phases[2]!)) },
  };
}

/** The stand-in agent run as the worker runs it (`codex exec --json … -- <prompt>`), spawn → exit. */
async function timeStandIn(ctx: BenchContext, n: number): Promise<number[]> {
  const out: number[] = [];
  const home = join(ctx.dir, "standin-home");
  await mkdir(home, { recursive: true });
  await writeFile(join(home, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }));
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [FAKE_CODEX, "exec", "--json", "--skip-git-repo-check", "--", "say done"], {
        cwd: ctx.dir,
        env: { PATH: process.env.PATH ?? "", CODEX_HOME: home },
        stdio: ["ignore", "ignore", "ignore"],
      });
      child.once("error", reject).once("exit", () => resolve());
    });
    out.push(performance.now() - t);
  }
  return out;
}

/** Preflight from the cached auth state (Login.preflight, what a job awaits) and a real `codex login status`. */
async function timePreflight(ctx: BenchContext): Promise<{ cached: Percentiles; spawnMs: number[]; bin: string }> {
  const config = loadConfig(ctx.env);
  const adapter = createAdapter("codex", config);
  const volume = { name: "bench", path: ctx.volume };
  const login = new Login(adapter, volume, { ttlMs: 300_000, recheckMs: 30_000 }, () => undefined, ctx.log);
  login.start();
  const cached: number[] = [];
  try {
    await login.settled();
    if (!login.ready) throw new Error("bench: the stand-in login check did not pass");
    for (let i = 0; i < 2_000; i++) {
      const t = performance.now();
      await login.preflight();
      cached.push(performance.now() - t);
    }
  } finally {
    login.stop();
  }
  // The pinned real CLI, offline: CODEX_HOME is a temporary volume holding an API-key auth.json.
  const real = createAdapter("codex", loadConfig({ ...ctx.env, MOONMIND_CODEX_BIN: join(import.meta.dirname, "../node_modules/.bin/codex") }));
  const realVolume = { name: "bench-real", path: join(ctx.dir, "real-codex-home") };
  await mkdir(realVolume.path, { recursive: true });
  await writeFile(join(realVolume.path, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-bench-not-real" }), { mode: 0o600 });
  const spawnMs: number[] = [];
  for (let i = 0; i < (ctx.quick ? 3 : 10); i++) {
    const t = performance.now();
    const check = await real.check(realVolume);
    spawnMs.push(performance.now() - t);
    if (check.result.status !== "passed") throw new Error(`bench: real codex login status did not pass: ${check.result.message}`);
  }
  return { cached: percentiles(cached), spawnMs, bin: real.bin };
}

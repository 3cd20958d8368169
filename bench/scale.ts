/**
 * Drain and scale with worker processes (`node src/cli/bin.mjs worker`, the instant stand-in
 * agent, a local repository), intake in this process. Times are arrivals in this process.
 *
 * The drain: `jobs` queued across 3 shards while no worker runs (intake's rate for that backlog
 * is noted), then 3 worker processes drain it; at half way (or when the phase's time budget is
 * spent) 3 more join. A phase's rate counts only jobs ended while all of its workers serve.
 * What the budget leaves queued is purged once the second phase ends.
 *
 * The curve: with those 6 workers, then 3, then 1 (stopping some each time), and then 3 fresh
 * workers on 1 and on 9 shards: `jobs` submitted at once; intake = jobs / (first submit → last
 * `routed`), the workers draining meanwhile; drain = jobs / (first `claimed` → last
 * `succeeded`); pickup = `routed` → `claimed` of single jobs sent one at a time to idle workers.
 *
 * CPU: user + system seconds from /proc over each window, as cores busy — the nats-server, the
 * workers' own JavaScript, their children (git, the agent process), this process (intake), and
 * the whole machine (anything else running shows as the difference).
 */
import { availableParallelism } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Intake } from "../actors/intake/intake.js";
import { connectNats } from "../src/nats/connect.js";
import { STREAMS, SUBJECTS } from "../src/subjects.js";
import { startIntake, workerEnv, type BenchContext } from "./context.js";
import { cpuDelta, machineBusy, spawnWorker, treeCpu, type TreeCpu, type WorkerProcess } from "./procs.js";
import { percentiles, until, type Percentiles } from "./stats.js";

/** CPU use over a window in cores (1 = one core busy the whole time). */
export interface CpuShare {
  server: number;
  workerRuntime: number;
  jobChildren: number;
  bench: number;
  /** The four above. */
  total: number;
  /** Every process on the machine. */
  machine: number;
  cores: number;
}

export interface ScalePoint {
  workers: number;
  shards: number;
  jobs: number;
  intakePerSec: number;
  drainPerSec: number;
  pickup: Percentiles;
  cpu: CpuShare;
}

export interface DrainPhase {
  workers: number;
  jobs: number;
  seconds: number;
  jobsPerSec: number;
  cpu: CpuShare;
}

export interface DrainResult {
  /** Jobs queued before any worker ran. */
  jobs: number;
  /** Jobs that ran; the rest were purged when the time budget ran out. */
  drained: number;
  shards: number;
  concurrency: number;
  phaseBudgetSeconds: number;
  /** Routing the whole backlog before any worker runs. */
  intakePerSec: number;
  phases: DrainPhase[];
}

export interface ScaleOptions {
  drainJobs: number;
  /** Each drain phase ends at this many seconds if its jobs are not done (0: no limit). */
  phaseSeconds: number;
  pointJobs: number;
  pickupJobs: number;
  concurrency: number;
  /** Worker processes of the curve on 3 shards, from 6 down (the drain leaves 6 running). */
  workerPoints: number[];
  /** Also 3 workers on 1 and on 9 shards. */
  shardPoints: boolean;
}

interface Sample {
  at: number;
  server: TreeCpu;
  workers: TreeCpu;
  bench: number;
  machine: number;
}

const EVENTS = ["routed", "claimed", "succeeded", "failed"] as const;

/** Arrival times in this process of each job's events, for ids starting with `prefix`. */
class Watch {
  readonly at = Object.fromEntries(EVENTS.map((t) => [t, new Map<string, number>()])) as Record<(typeof EVENTS)[number], Map<string, number>>;
  private readonly subs;
  constructor(nc: NatsConnection, prefix: string) {
    this.subs = EVENTS.map((type) =>
      nc.subscribe(`status.jobs.*.${type}`, {
        callback: (_e, m) => {
          const id = m.subject.split(".")[2]!;
          if (id.startsWith(prefix) && !this.at[type].has(id)) this.at[type].set(id, performance.now());
        },
      }),
    );
  }
  stop(): void {
    for (const s of this.subs) s.unsubscribe();
  }
  get ended(): number {
    return this.at.succeeded.size + this.at.failed.size;
  }
}

const cores = () => availableParallelism();

function sample(ctx: BenchContext, workers: WorkerProcess[]): Sample {
  const w = workers.map((x) => treeCpu(x.pid)).reduce((a, b) => ({ runtime: a.runtime + b.runtime, children: a.children + b.children }), { runtime: 0, children: 0 });
  const u = process.cpuUsage();
  return { at: performance.now(), server: treeCpu(ctx.serverPid), workers: w, bench: (u.user + u.system) / 1e6, machine: machineBusy() };
}

/** CPU between two samples of the same workers. */
function share(a: Sample, b: Sample): CpuShare {
  const secs = (b.at - a.at) / 1_000;
  const w = cpuDelta(a.workers, b.workers);
  const part = { server: (b.server.runtime - a.server.runtime) / secs, workerRuntime: w.runtime / secs, jobChildren: w.children / secs, bench: (b.bench - a.bench) / secs };
  return { ...part, total: part.server + part.workerRuntime + part.jobChildren + part.bench, machine: (b.machine - a.machine) / secs, cores: cores() };
}

async function startWorkers(ctx: BenchContext, tag: string, from: number, n: number, shards: number, concurrency: number): Promise<WorkerProcess[]> {
  const workers: WorkerProcess[] = [];
  for (let i = from; i < from + n; i++) {
    const id = `${tag}-w${i}`;
    workers.push(spawnWorker(id, await workerEnv(ctx, id, { MOONMIND_CODEX_SHARDS: String(shards), MOONMIND_WORKER_CONCURRENCY: String(concurrency) }), ctx.dir));
  }
  await Promise.all(workers.map((w) => w.serving));
  return workers;
}

/** Submits jobs `<prefix>-<from>` … with 500 publishes in flight, keys spread over the shards. */
async function submit(nc: NatsConnection, ctx: BenchContext, prefix: string, from: number, n: number, onSent?: () => void): Promise<void> {
  const js = jetstream(nc);
  for (let i = from; i < from + n; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, from + n - i) }, (_, k) =>
        js.publish(SUBJECTS.submit, JSON.stringify({ id: `${prefix}-${i + k}`, repository: ctx.repo, affinityKey: `k${i + k}`, instructions: `write OUT.md: ${i + k}\nsay done` })),
      ),
    );
    onSent?.();
  }
}

/** Resolves when `check` holds or `budgetMs` (0: none) has passed; false on the budget. */
async function untilOrBudget(check: () => boolean, budgetMs: number, tick: () => void): Promise<boolean> {
  const end = budgetMs > 0 ? performance.now() + budgetMs : Infinity;
  while (!check()) {
    if (performance.now() > end) return false;
    tick();
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** One point of the curve on the workers given (already serving). */
async function point(ctx: BenchContext, nc: NatsConnection, workers: WorkerProcess[], shards: number, o: ScaleOptions): Promise<ScalePoint> {
  const tag = `sc${workers.length}x${shards}`;
  ctx.progress.step(`scale: ${workers.length} worker${workers.length > 1 ? "s" : ""} on ${shards} shard${shards > 1 ? "s" : ""}`);
  const watch = new Watch(nc, `${tag}-`);
  try {
    const before = sample(ctx, workers);
    const t0 = performance.now();
    await submit(nc, ctx, `${tag}-d`, 0, o.pointJobs);
    await until(() => watch.at.routed.size >= o.pointJobs, "every job routed", 120_000);
    const routedEnd = Math.max(...watch.at.routed.values());
    await until(() => (ctx.progress.count(watch.ended, o.pointJobs), watch.ended >= o.pointJobs), "every job to end", 30 * 60_000);
    const after = sample(ctx, workers);
    if (watch.at.failed.size > 0) throw new Error(`bench: ${watch.at.failed.size} jobs failed in ${tag}`);
    const drainPerSec = o.pointJobs / ((Math.max(...watch.at.succeeded.values()) - Math.min(...watch.at.claimed.values())) / 1_000);
    const pickup: number[] = [];
    for (let i = 0; i < o.pickupJobs; i++) {
      const id = `${tag}-p-${i}`;
      await submit(nc, ctx, `${tag}-p`, i, 1);
      await until(() => watch.at.succeeded.has(id) || watch.at.failed.has(id), `pickup job ${id}`);
      pickup.push(watch.at.claimed.get(id)! - watch.at.routed.get(id)!);
    }
    return { workers: workers.length, shards, jobs: o.pointJobs, intakePerSec: o.pointJobs / ((routedEnd - t0) / 1_000), drainPerSec, pickup: percentiles(pickup), cpu: share(before, after) };
  } finally {
    watch.stop();
  }
}

/** The queued drain on 3 shards by 3 then 6 worker processes, then the curve. */
export async function benchScale(ctx: BenchContext, o: ScaleOptions): Promise<{ drain: DrainResult; points: ScalePoint[] }> {
  const shards = 3;
  const nc = await connectNats({ servers: ctx.url, name: "bench-scale" });
  const jsm = await jetstreamManager(nc);
  const workers: WorkerProcess[] = [];
  let intake: Intake | undefined;
  const watch = new Watch(nc, "drain-");
  const points: ScalePoint[] = [];
  try {
    intake = await startIntake(ctx, nc, shards, "bench-drain-intake");
    await jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.allShards });
    ctx.progress.step(`drain: queueing ${o.drainJobs} jobs on ${shards} shards`);
    const t0 = performance.now();
    await submit(nc, ctx, "drain", 0, o.drainJobs, () => ctx.progress.count(watch.at.routed.size, o.drainJobs));
    await until(() => (ctx.progress.count(watch.at.routed.size, o.drainJobs), watch.at.routed.size >= o.drainJobs), "every job routed", 10 * 60_000);
    const intakePerSec = o.drainJobs / ((Math.max(...watch.at.routed.values()) - t0) / 1_000);

    const budgetMs = o.phaseSeconds * 1_000;
    const phase = async (add: number, target: number): Promise<DrainPhase> => {
      ctx.progress.step(`drain: ${o.drainJobs} queued, ${workers.length + add} worker processes`);
      workers.push(...(await startWorkers(ctx, "drain", workers.length, add, shards, o.concurrency)));
      const a = sample(ctx, workers);
      const c = watch.ended;
      await untilOrBudget(() => watch.ended >= target, budgetMs, () => ctx.progress.count(watch.ended, o.drainJobs));
      const b = sample(ctx, workers);
      const seconds = (b.at - a.at) / 1_000;
      return { workers: workers.length, jobs: watch.ended - c, seconds, jobsPerSec: (watch.ended - c) / seconds, cpu: share(a, b) };
    };
    const phases = [await phase(3, Math.floor(o.drainJobs / 2)), await phase(3, o.drainJobs)];
    if (watch.ended < o.drainJobs) {
      // The budget is spent: what is still queued goes; what runs ends.
      await jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.allShards });
      await until(() => [...watch.at.claimed.keys()].every((id) => watch.at.succeeded.has(id) || watch.at.failed.has(id)), "the running drain jobs to end", 120_000);
    }
    if (watch.at.failed.size > 0) throw new Error(`bench: ${watch.at.failed.size} drain jobs failed`);
    const drain: DrainResult = { jobs: o.drainJobs, drained: watch.ended, shards, concurrency: o.concurrency, phaseBudgetSeconds: o.phaseSeconds, intakePerSec, phases };

    // The curve on 3 shards: 6 workers, then 3, then 1 (the drain's workers, fewer each time).
    for (const keep of o.workerPoints) {
      while (workers.length > keep) await workers.pop()!.stop();
      points.push(await point(ctx, nc, workers, shards, o));
    }
    while (workers.length > 0) await workers.pop()!.stop();
    await intake.stop();
    intake = undefined;

    if (o.shardPoints) {
      for (const n of [1, 9]) {
        ctx.progress.step(`scale: starting 3 workers on ${n} shard${n > 1 ? "s" : ""}`);
        intake = await startIntake(ctx, nc, n, `bench-scale-intake-${n}`);
        workers.push(...(await startWorkers(ctx, `sh${n}`, 0, 3, n, o.concurrency)));
        points.push(await point(ctx, nc, workers, n, o));
        while (workers.length > 0) await workers.pop()!.stop();
        await intake.stop();
        intake = undefined;
      }
    }
    points.sort((a, b) => a.shards - b.shards || a.workers - b.workers);
    return { drain, points };
  } finally {
    watch.stop();
    await Promise.all(workers.map((w) => w.stop()));
    await intake?.stop();
    await nc.close();
  }
}

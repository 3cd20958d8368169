/** `ops.shards` and `ops.workers`: the fleet as the server and KV `workers` see it. */
import type { ConsumerInfo } from "@nats-io/jetstream";
import type { WorkerRecord } from "../schemas/events.js";
import type { RunRecord } from "../schemas/run.js";
import type { BoundWorker, ShardHealth, ShardsReply, ShardsRequest, WorkersReply, WorkersRequest } from "../schemas/ops.js";
import { RUNTIMES, type Runtime } from "../schemas/runtime.js";
import { STREAMS, shardConsumer, shardSubject } from "../subjects.js";
import { waitingRemedy } from "../workers/readiness.js";
import type { OpsContext } from "./context.js";
import { isLive, loginFor, readRuns, readWorkers, servesNow, volumeNameFor } from "./records.js";

export async function shards(ctx: OpsContext, req: ShardsRequest): Promise<ShardsReply> {
  const [workers, runs] = await Promise.all([readWorkers(ctx), readRuns(ctx)]);
  const latest = new Map<string, RunRecord>();
  for (const r of runs) {
    const prev = latest.get(r.consumer);
    if (!prev || prev.updatedAt < r.updatedAt) latest.set(r.consumer, r);
  }
  const out: ShardHealth[] = [];
  for (const runtime of RUNTIMES) {
    if (req.runtime && req.runtime !== runtime) continue;
    for (let shard = 0; shard < ctx.config.shardCounts[runtime]; shard++) {
      out.push(await shardHealth(ctx, runtime, shard, workers, latest.get(shardConsumer(runtime, shard))));
    }
  }
  return { at: ctx.now().toISOString(), shards: out };
}

async function shardHealth(ctx: OpsContext, runtime: Runtime, shard: number, workers: WorkerRecord[], latestRun: RunRecord | undefined): Promise<ShardHealth> {
  const subject = shardSubject(runtime, shard);
  const consumer = shardConsumer(runtime, shard);
  const volumeName = volumeNameFor(ctx, runtime, shard);
  const bound: BoundWorker[] = workers
    .filter((w) => w.shards.includes(consumer) && isLive(ctx, w))
    .map((w) => {
      const { login, auth } = loginFor(w, runtime, volumeName);
      return {
        workerId: w.workerId,
        state: w.state,
        ...(login ? { login } : {}),
        ...(auth ? { auth } : {}),
        ready: servesNow(ctx, w, runtime, shard, volumeName),
        heartbeatAt: w.heartbeatAt,
      };
    });
  const health: ShardHealth = {
    runtime,
    shard,
    subject,
    consumer,
    pending: 0,
    ackPending: 0,
    redelivered: 0,
    volumeName,
    workers: bound,
    ...(latestRun ? { latestRun: { jobId: latestRun.jobId, state: latestRun.state, updatedAt: latestRun.updatedAt } } : {}),
  };
  let info: ConsumerInfo;
  try {
    info = await ctx.jsm.consumers.info(STREAMS.jobs, consumer);
  } catch (err) {
    return { ...health, error: `consumer ${STREAMS.jobs}/${consumer} could not be read: ${(err as Error).message}; run any moonmind actor once to provision it` };
  }
  health.pending = info.num_pending;
  health.ackPending = info.num_ack_pending;
  health.redelivered = info.num_redelivered;
  if (info.num_pending > 0) {
    // The first message never delivered: the oldest job waiting for a worker.
    const first = await ctx.jsm.streams
      .getMessage(STREAMS.jobs, { next_by_subj: subject, seq: info.delivered.stream_seq + 1 } as unknown as { seq: number })
      .catch(() => null);
    if (first) health.oldestWaitingMs = Math.max(0, ctx.now().getTime() - first.time.getTime());
  }
  const queued = ctx.queuedRuns?.(runtime, shard);
  if (queued !== undefined) health.queued = queued;
  // Handed-back jobs are not pending (they wait out a delay as ack-pending) but wait all the same.
  if ((info.num_pending > 0 || (queued ?? 0) > 0) && !bound.some((w) => w.ready)) health.flag = waitingRemedy(runtime, subject, bound);
  return health;
}

export async function workers(ctx: OpsContext, req: WorkersRequest): Promise<WorkersReply> {
  const now = ctx.now().getTime();
  const list = (await readWorkers(ctx))
    .map((w) => ({
      workerId: w.workerId,
      state: w.state,
      runtimes: w.runtimes,
      shards: w.shards,
      concurrency: w.concurrency,
      auth: w.auth,
      inFlight: w.inFlight,
      version: w.version,
      versions: w.versions,
      startedAt: w.startedAt,
      heartbeatAt: w.heartbeatAt,
      uptimeMs: Math.max(0, now - Date.parse(w.startedAt)),
      live: isLive(ctx, w),
    }))
    .filter((w) => req.all === true || w.live)
    .sort((a, b) => a.workerId.localeCompare(b.workerId));
  return { at: ctx.now().toISOString(), workers: list };
}

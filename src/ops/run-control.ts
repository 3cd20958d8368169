/**
 * `ops.runs.cancel`, `ops.runs.retry`, `ops.runs.preflight`: an operator moving one run. Every
 * record write is compare-and-set (RunStore.update), so an operator and a worker never both move it.
 */
import type { Msg } from "@nats-io/nats-core";
import { jobMeta } from "../schemas/job.js";
import type { PreflightResult, RunRecord } from "../schemas/run.js";
import type {
  RunsCancelReply,
  RunsCancelRequest,
  RunsPreflightReply,
  RunsPreflightRequest,
  RunsRetryReply,
  RunsRetryRequest,
} from "../schemas/ops.js";
import { RequeueableStateSchema, type RequeueableState, type WorkerRecord } from "../schemas/events.js";
import { finished } from "../runs/record.js";
import { workerControlSubject } from "../subjects.js";
import type { OpsContext } from "./context.js";
import { conflict, notFound, OpsRequestError, unavailable } from "./errors.js";
import { isLive, loginFor, readWorkers, servesNow, volumeNameFor } from "./records.js";

const isRetryable = (state: RunRecord["state"] | undefined): state is RequeueableState => RequeueableStateSchema.safeParse(state).success;

function noRun(runId: string): OpsRequestError {
  return notFound(`no run ${runId}: check the id with 'moonmind runs list' (ops.runs.list)`);
}

/** A request to a worker's control endpoint; a service error in the reply becomes one of ours. */
async function askWorker(ctx: OpsContext, workerId: string, verb: "cancel" | "preflight", body: unknown): Promise<unknown> {
  let reply: Msg;
  try {
    reply = await ctx.nc.request(workerControlSubject(workerId, verb), JSON.stringify(body), { timeout: ctx.workerTimeoutMs });
  } catch (err) {
    const e = err as Error;
    const gone = /no responders/i.test(e.message) || e.name === "NoRespondersError";
    throw unavailable(
      gone
        ? `worker ${workerId} does not answer ${workerControlSubject(workerId, verb)} (gone, or a version without that endpoint): see 'nats micro info moonmind-worker'`
        : `worker ${workerId} did not answer ${verb} in ${ctx.workerTimeoutMs} ms: ${e.message}`,
      err,
    );
  }
  const code = reply.headers?.get("Nats-Service-Error-Code");
  if (code) {
    const description = reply.headers?.get("Nats-Service-Error") ?? "";
    throw new OpsRequestError(Number(code) === 400 ? 400 : 503, `worker ${workerId} refused ${verb}: ${description || code}`);
  }
  return reply.json();
}

export async function cancelRun(ctx: OpsContext, req: RunsCancelRequest): Promise<RunsCancelReply> {
  const reason = req.reason ?? "cancelled by an operator";
  const workers = new Map((await readWorkers(ctx)).map((w) => [w.workerId, w]));
  const holderGone = (r: RunRecord) => {
    const w = r.workerId === undefined ? undefined : workers.get(r.workerId);
    return w === undefined || !isLive(ctx, w);
  };
  let cancelledNow = false;
  const stored = await ctx.runs.update(req.runId, (r) => {
    cancelledNow = false;
    // Queued (or running on a worker that is gone, which nobody else will finish): cancelled here.
    if (r.state !== "queued" && !(r.state === "running" && holderGone(r))) return undefined;
    cancelledNow = true;
    const { waiting: _waiting, ...rest } = r; // it waits no more
    return finished(rest, ctx.now().toISOString(), "cancelled", { outcome: "CANCELLED", summary: reason });
  });
  if (!stored) throw noRun(req.runId);
  const record = stored.record;
  if (cancelledNow) {
    await ctx.publisher.job(record.jobId, { type: "cancelled", reason, ...(record.workerId ? { workerId: record.workerId } : {}) }, jobMeta(record.request));
    return { runId: record.jobId, state: "cancelled" };
  }
  if (record.state === "running" && record.workerId) {
    await askWorker(ctx, record.workerId, "cancel", { jobId: record.jobId, reason });
    return { runId: record.jobId, state: "cancelling", workerId: record.workerId };
  }
  throw conflict(`run ${record.jobId} is ${record.state} already; only a queued or running run can be cancelled`);
}

export async function retryRun(ctx: OpsContext, req: RunsRetryRequest): Promise<RunsRetryReply> {
  let from: RunRecord["state"] | undefined;
  const stored = await ctx.runs.update(req.runId, (r) => {
    from = r.state;
    if (!isRetryable(r.state)) return undefined;
    // History stays (attempts, lastError, artifacts, preflight); what belonged to the finished attempt goes.
    const { workerId: _w, finishedAt: _f, result: _r, nextAttemptAt: _n, claimedAt: _c, startedAt: _s, waiting: _wt, agentFinishedAt: _af, ...rest } = r;
    return { ...rest, state: "queued", maxAttempts: Math.max(r.maxAttempts, r.attempts + 1), updatedAt: ctx.now().toISOString() };
  });
  if (!stored) throw noRun(req.runId);
  const record = stored.record;
  if (record.state !== "queued" || !isRetryable(from)) {
    throw conflict(`run ${record.jobId} is ${record.state}; only a failed, cancelled or dead_letter run can be retried`);
  }
  const attempt = record.attempts + 1;
  // Not `accepted`: that is intake's word for a new job; this one goes on under its id.
  await ctx.publisher.job(record.jobId, { type: "requeued", attempt, previousState: from, by: "ops", subject: record.subject }, jobMeta(record.request));
  // JOBS dedupes by Nats-Msg-Id: the retry's id must differ from the first submission's and from
  // every earlier retry's. The record's new revision is unique to this write.
  await ctx.js.publish(record.subject, JSON.stringify(record.request), { msgID: `${record.jobId}.retry.${record.attempts}.${stored.revision}` });
  return { runId: record.jobId, state: "queued", attempt, subject: record.subject };
}

interface WorkerPreflight {
  workerId: string;
  results: Array<{ login: string; runtime: string; volume: string; state: string; status: string; message: string; checkedAt: string }>;
}

export async function preflightRun(ctx: OpsContext, req: RunsPreflightRequest): Promise<RunsPreflightReply> {
  const stored = await ctx.runs.get(req.runId);
  if (!stored) throw noRun(req.runId);
  const run = stored.record;
  const volumeName = run.diagnostics.volumeName ?? volumeNameFor(ctx, run.runtime, run.shard);
  const base = { runId: run.jobId, subject: run.subject, volumeName };
  const workers = await readWorkers(ctx);
  const fresh = run.preflight && ctx.now().getTime() - Date.parse(run.preflight.checkedAt) < ctx.config.env.MOONMIND_AUTH_TTL_MS;
  // A stored pass is stale once no worker's login for the shard is ready or being checked (a job found it expired since).
  const loginUp = (w: WorkerRecord) => ["ready", "checking"].includes(loginFor(w, run.runtime, volumeName).auth?.state ?? "");
  const stillTrue = run.preflight?.status !== "passed" || workers.some((w) => isLive(ctx, w) && w.shards.includes(run.consumer) && loginUp(w));
  if (!req.forceRefresh && run.preflight && fresh && stillTrue) {
    return { ...base, volumeName: run.preflight.volume ?? volumeName, status: run.preflight.status, checkedAt: run.preflight.checkedAt, message: run.preflight.message, cached: true };
  }
  const worker = pickWorker(ctx, workers, run, volumeName);
  if (!worker) {
    throw unavailable(`no live worker serves ${run.subject} to run the ${run.runtime} preflight: start one with MOONMIND_WORKER_RUNTIMES=${run.runtime}`);
  }
  const reply = (await askWorker(ctx, worker.workerId, "preflight", { runtime: run.runtime, force: req.forceRefresh ?? false })) as WorkerPreflight;
  const results = Array.isArray(reply?.results) ? reply.results.filter((r) => r.runtime === run.runtime) : [];
  const result = results.find((r) => r.volume === volumeName) ?? results[0];
  if (!result) throw unavailable(`worker ${worker.workerId} returned no ${run.runtime} preflight result for ${volumeName}`);
  const status = (["passed", "failed", "skipped"] as const).find((s) => s === result.status) ?? "failed";
  const preflight: PreflightResult = { status, message: result.message, checkedAt: result.checkedAt, volume: result.volume };
  await ctx.runs.update(run.jobId, (r) => ({ ...r, preflight, updatedAt: ctx.now().toISOString() }));
  return { ...base, volumeName: result.volume, status, checkedAt: result.checkedAt, message: result.message, workerId: worker.workerId, cached: false };
}

/** A live worker bound to the run's shard: one whose login is ready first, then any. */
function pickWorker(ctx: OpsContext, workers: WorkerRecord[], run: RunRecord, volumeName: string): WorkerRecord | undefined {
  const bound = workers.filter((w) => isLive(ctx, w) && w.shards.includes(run.consumer));
  return (
    bound.find((w) => servesNow(ctx, w, run.runtime, run.shard, volumeName)) ??
    bound.find((w) => loginFor(w, run.runtime, volumeName).login !== undefined) ??
    bound[0]
  );
}

/** `moonmind watch [jobId]`: status history from STATUS, then live; one job's ends with the job. */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { parseJson } from "../../json.js";
import { MoonmindError, UsageError } from "../../errors.js";
import type { JobEvent } from "../../schemas/events.js";
import { BUCKETS, STREAMS, WORKER_EVENTS, jobEventFilter, jobEventSubject, submissionEventFilter, workerEventSubject } from "../../subjects.js";
import { parseJobId, readRunRecord, type CliContext } from "../context.js";
import { countStored, followStatus, parseSince } from "../follow.js";
import { isTerminal, statusLine } from "../render.js";
import { startProgress } from "../table.js";

export interface WatchOptions {
  json?: boolean;
  since?: string;
  workers?: boolean;
  heartbeats?: boolean;
  /** Machine transitions (`state` events, what the live view draws) too. */
  states?: boolean;
  follow?: boolean;
  /** For one job: how long to wait for an id that has no record and no events yet (seconds). */
  appearTimeout?: string;
}

/** Exit code for a job's terminal event: 0 succeeded, 2 refused as given (rejected), 1 otherwise. */
export function exitForTerminal(e: JobEvent): number {
  return e.type === "succeeded" ? 0 : e.type === "rejected" ? 2 : 1;
}

/** Subject filters: one job (and its submissions), or every job, plus worker events (heartbeats only if asked). */
export function watchFilters(jobId: string | undefined, opts: Pick<WatchOptions, "workers" | "heartbeats" | "states">): string[] {
  if (jobId) return [jobEventFilter(jobId), submissionEventFilter(jobId)];
  const filters = [jobEventFilter(), submissionEventFilter()];
  if (opts.workers) {
    for (const type of WORKER_EVENTS) {
      if ((type !== "heartbeat" || opts.heartbeats) && (type !== "state" || opts.states)) filters.push(workerEventSubject("*", type));
    }
  }
  return filters;
}

export async function watchCommand(ctx: CliContext, rawId: string | undefined, opts: WatchOptions): Promise<number> {
  const jobId = rawId === undefined ? undefined : parseJobId(rawId);
  let since: Date | undefined;
  try {
    since = parseSince(opts.since ?? (jobId ? "all" : "10m"));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (opts.heartbeats && !opts.workers) throw new UsageError("--heartbeats goes with --workers");
  const appearMs = (opts.appearTimeout === undefined ? 10 : Number(opts.appearTimeout)) * 1000;
  if (!Number.isFinite(appearMs) || appearMs < 0) throw new UsageError(`--appear-timeout must be a number of seconds (got '${opts.appearTimeout}')`);

  const nc = await ctx.connect();
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  let appearTimer: NodeJS.Timeout | undefined;
  let neverSeen = false;
  const progress = jobId ? startProgress(ctx.terminal, `watching ${jobId}; Ctrl-C to stop`) : undefined;
  try {
    if (jobId && !(await jobIsKnown(nc, jobId))) {
      // An id with no record and no stored event: maybe just submitted, maybe a typo. Wait a bounded time.
      neverSeen = true;
      if (!opts.json) ctx.err(`no job ${jobId} yet (no run record, no events); waiting ${appearMs / 1000} s for it to appear`);
      appearTimer = setTimeout(() => controller.abort(), appearMs);
    }
    let lastWaiting: string | undefined;
    for await (const item of followStatus(nc, { filter: watchFilters(jobId, opts), signal: controller.signal, ...(since ? { since } : {}) })) {
      if (appearTimer) {
        clearTimeout(appearTimer);
        appearTimer = undefined;
        neverSeen = false;
      }
      if (item.kind !== "submission" && item.event.type === "state" && !opts.states) continue;
      // A waiting reason is shown once until something else happens to the job.
      if (item.kind === "job" && item.event.type === "waiting") {
        const key = `${item.event.jobId} ${item.event.reason}`;
        if (!opts.json && key === lastWaiting) continue;
        lastWaiting = key;
      } else if (item.kind === "job") lastWaiting = undefined;
      progress?.clear();
      ctx.out(opts.json ? JSON.stringify(item.event) : statusLine(item));
      // One job's story ends with its terminal event, unless asked to keep following (retries of a replay).
      if (jobId && item.kind === "job" && isTerminal(item.event) && !opts.follow && (await endedForGood(nc, item.event))) {
        return exitForTerminal(item.event);
      }
    }
    if (neverSeen) {
      throw new MoonmindError(`no job ${jobId}: no run record in KV ${BUCKETS.runs} and no events on ${STREAMS.status} after ${appearMs / 1000} s`, {
        remedy: "check the id (moonmind runs list); STATUS keeps events for 7 days",
      });
    }
    return 0;
  } finally {
    clearTimeout(appearTimer);
    progress?.stop();
    process.off("SIGINT", onSignal);
    await nc.drain().catch(() => undefined);
  }
}

/**
 * Whether a terminal event is the job's end: not when the run was queued again after it
 * (ops.runs.retry publishes `requeued`), so a watcher follows the retry to its own end.
 */
export async function endedForGood(nc: NatsConnection, e: JobEvent): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const last = await jsm.streams.getMessage(STREAMS.status, { last_by_subj: jobEventSubject(e.jobId, "requeued") }).catch(() => null);
  const requeuedAt = last ? (parseJson(last.data) as { at?: unknown } | undefined)?.at : undefined;
  return typeof requeuedAt !== "string" || requeuedAt < e.at;
}

/** Whether the id has a run record or any stored event (its own or a submission's). */
export async function jobIsKnown(nc: NatsConnection, jobId: string): Promise<boolean> {
  if (await readRunRecord(nc, jobId)) return true;
  return (await countStored(nc, jobEventFilter(jobId))) > 0 || (await countStored(nc, submissionEventFilter(jobId))) > 0;
}

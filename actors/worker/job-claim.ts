/**
 * Claiming a run for a delivered job message: the run record is the source of truth (a body that
 * disagrees is refused), a live holder keeps it, a silent one keeps it a while longer (a server
 * outage makes every worker look silent for a moment), and every write is compare-and-set. The
 * rules themselves are pure, in src/runs/claim.ts; this is their I/O.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { ClaimResult } from "../../machines/job.types.js";
import { canonicalJson } from "../../src/json.js";
import type { Logger } from "../../src/logger.js";
import { claimed, decideClaim, silenceLeftMs, takeoverSilenceMs } from "../../src/runs/claim.js";
import { RunConflictError, type RunStore, type StoredRun } from "../../src/runs/store.js";
import type { JobRequest } from "../../src/schemas/job.js";
import type { RunRecord } from "../../src/schemas/run.js";

export interface ClaimContext {
  workerId: string;
  runs: RunStore;
  /** Whether `holder` still holds the run (alive, and the life that claimed it or one running it). */
  holdsRun: (holder: string, jobId: string, claimedAt: string | undefined) => Promise<boolean>;
  silentSince: Map<string, number>;
  settings: { workerTtlMs: number };
  log: Logger;
  msg: JsMsg;
  job: JobRequest;
  deadLetter: (reason: string, original: unknown) => Promise<unknown>;
  /** Re-announces a run that ended already (its terminal event may have been lost with its worker). */
  announceEnd: (record: RunRecord) => Promise<void>;
}

export interface Claim {
  result: ClaimResult;
  /** The record as this worker wrote it, when it took ownership. */
  stored?: StoredRun;
}

const nowIso = () => new Date().toISOString();

export async function claimRun(c: ClaimContext): Promise<Claim> {
  const { job, msg, runs, log } = c;
  for (let i = 0; i < 5; i++) {
    const current = await runs.get(job.id);
    if (!current) {
      return { result: { kind: "missing", reason: `job ${job.id} has no run record (deleted, or never written by intake); it was not run` } };
    }
    // The record is the source of truth: a body that disagrees (forged, or stale) is never run.
    if (canonicalJson(current.record.request) !== canonicalJson(job)) {
      const reason = `the message on ${msg.subject} disagrees with the request in job ${job.id}'s run record; it was refused and not run`;
      log.error({ jobId: job.id, subject: msg.subject, seq: msg.seq }, reason);
      await c.deadLetter(reason, job).catch((err: unknown) => log.warn({ err, jobId: job.id }, "DEAD copy not stored"));
      return { result: { kind: "refused", reason } };
    }
    const holder = current.record.workerId;
    const alive = holder !== undefined && holder !== c.workerId && (await c.holdsRun(holder, job.id, current.record.claimedAt));
    if (holder !== undefined && holder !== c.workerId && current.record.state === "running" && !alive) {
      const left = silenceLeftMs(c.silentSince, `${job.id}:${holder}`, takeoverSilenceMs(current.record, c.settings.workerTtlMs), Date.now());
      if (left > 0) return { result: { kind: "busy", holder, retryInMs: left + 100 } };
    }
    const decision = decideClaim(current.record, c.workerId, alive);
    if (decision.kind === "skip") {
      await c.announceEnd(current.record).catch((err: unknown) => log.warn({ err, jobId: job.id }, "could not re-announce the run's end"));
      return { result: decision };
    }
    if (decision.kind === "busy") return { result: { kind: "busy", holder: decision.holder, retryInMs: c.settings.workerTtlMs } };

    // Exhausted or lost: take ownership so the concluding write is ours alone. Otherwise: claim it.
    const concluding = decision.kind === "exhausted" || decision.kind === "lost";
    const taken = concluding ? { ...current.record, state: "running" as const, workerId: c.workerId, updatedAt: nowIso() } : claimed(current.record, c.workerId, nowIso());
    // How many jobs still wait behind this one on its shard, as the server counted at delivery.
    const next = concluding ? taken : { ...taken, diagnostics: { ...taken.diagnostics, pending: msg.info.pending, deliveries: msg.info.deliveryCount } };
    let revision: number;
    try {
      revision = await runs.replace(job.id, next, current.revision);
    } catch (err) {
      if (err instanceof RunConflictError) continue;
      throw err;
    }
    const stored = { record: next, revision };
    const attempt = next.attempts;
    if (decision.kind === "exhausted") return { result: { kind: "exhausted", attempt }, stored };
    if (decision.kind === "lost") {
      const where = decision.holder === c.workerId ? `an earlier life of this worker (${c.workerId})` : `worker ${decision.holder ?? "unknown"}`;
      const reason =
        `the agent of attempt ${attempt} finished at ${decision.finishedAt} on ${where}, which stopped before storing its result; ` +
        `the agent was not run again, as its effect had happened: 'moonmind runs retry ${job.id}' runs it afresh`;
      log.warn({ jobId: job.id, holder: decision.holder, attempt }, "the run's agent had finished on a worker that is gone; ending it without its result");
      return { result: { kind: "lost", attempt, reason }, stored };
    }
    return { result: { kind: "claimed", attempt }, stored };
  }
  throw new RunConflictError(`run ${job.id} kept changing while claiming it`);
}

/**
 * Whether a worker may take a run: pure, so the rules are unit-tested apart from KV.
 */
import { TERMINAL_RUN_STATES, type RunRecord } from "../schemas/run.js";
import { isAgentFinished } from "./record.js";

export type ClaimDecision =
  | { kind: "take" }
  | { kind: "skip"; reason: string }
  | { kind: "busy"; holder: string }
  | { kind: "exhausted" }
  /** Its agent finished on a worker that is gone before the result was stored: never run it again. */
  | { kind: "lost"; holder: string | undefined; finishedAt: string };

export function decideClaim(record: RunRecord, workerId: string, holderAlive: boolean): ClaimDecision {
  if (TERMINAL_RUN_STATES.includes(record.state)) return { kind: "skip", reason: `run is ${record.state} already` };
  if (record.state === "running" && record.workerId !== undefined && record.workerId !== workerId && holderAlive) {
    return { kind: "busy", holder: record.workerId };
  }
  // Running on a worker that is gone (or on an earlier life of this one) whose agent had finished:
  // its effect happened and its result was on that worker's disk, which nobody will read now.
  if (isAgentFinished(record)) return { kind: "lost", holder: record.workerId, finishedAt: record.agentFinishedAt! };
  // Queued, or running on a worker that is gone (or on an earlier life of this one).
  if (record.attempts >= record.maxAttempts) return { kind: "exhausted" };
  return { kind: "take" };
}

/**
 * How long a run's holder must have been silent (past its heartbeat TTL) before another worker
 * takes the run: one TTL, as a server outage makes every worker look silent for a moment. A run
 * whose agent has finished waits longer: taking it over ends it without its result, for good,
 * while a holder that was only frozen (a stalled host, a long GC) would still store it. Nothing
 * is re-run meanwhile, so waiting costs only the time to say so.
 */
export const FINISHED_RUN_SILENCE_TTLS = 5;

export function takeoverSilenceMs(record: RunRecord, workerTtlMs: number): number {
  return isAgentFinished(record) ? FINISHED_RUN_SILENCE_TTLS * workerTtlMs : workerTtlMs;
}

/**
 * Whether a holder found silent has been silent long enough to take its run over, tracked in
 * `silentSince` (`<job>:<holder>` → ms when first found silent). Returns the ms still to wait, or 0.
 * Old entries go when a new one is added, so the map stays small.
 */
export function silenceLeftMs(silentSince: Map<string, number>, key: string, silenceMs: number, now: number): number {
  const first = silentSince.get(key);
  if (first === undefined) {
    for (const [k, at] of silentSince) if (now - at > 10 * silenceMs) silentSince.delete(k);
    silentSince.set(key, now);
    return silenceMs;
  }
  if (now - first < silenceMs) return silenceMs - (now - first);
  silentSince.delete(key);
  return 0;
}

export function claimed(record: RunRecord, workerId: string, nowIso: string): RunRecord {
  const { nextAttemptAt: _drop, preflight: _stale, waiting: _served, agentFinishedAt: _done, result: _result, ...rest } = record;
  return {
    ...rest,
    state: "running",
    workerId,
    attempts: record.attempts + 1,
    claimedAt: nowIso,
    updatedAt: nowIso,
  };
}

/**
 * Whether a worker may take a run: pure, so the rules are unit-tested apart from KV.
 */
import { TERMINAL_RUN_STATES, type RunRecord } from "../schemas/run.js";

export type ClaimDecision =
  | { kind: "take" }
  | { kind: "skip"; reason: string }
  | { kind: "busy"; holder: string }
  | { kind: "exhausted" };

export function decideClaim(record: RunRecord, workerId: string, holderAlive: boolean): ClaimDecision {
  if (TERMINAL_RUN_STATES.includes(record.state)) return { kind: "skip", reason: `run is ${record.state} already` };
  if (record.state === "running" && record.workerId !== undefined && record.workerId !== workerId && holderAlive) {
    return { kind: "busy", holder: record.workerId };
  }
  // Queued, or running on a worker that is gone (or on an earlier life of this one).
  if (record.attempts >= record.maxAttempts) return { kind: "exhausted" };
  return { kind: "take" };
}

export function claimed(record: RunRecord, workerId: string, nowIso: string): RunRecord {
  const { nextAttemptAt: _drop, preflight: _stale, waiting: _served, ...rest } = record;
  return {
    ...rest,
    state: "running",
    workerId,
    attempts: record.attempts + 1,
    claimedAt: nowIso,
    updatedAt: nowIso,
  };
}

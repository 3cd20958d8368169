/** Building and moving run records: pure functions over RunRecord, shared by intake and workers. */
import type { Route } from "../routing.js";
import { jobMeta, type JobRequest } from "../schemas/job.js";
import type { Outcome, RunError, RunRecord, RunState } from "../schemas/run.js";

export function newRunRecord(job: JobRequest, route: Route, nowIso: string): RunRecord {
  return {
    jobId: job.id,
    state: "queued",
    runtime: route.runtime,
    repository: job.repository,
    shard: route.shard,
    subject: route.subject,
    consumer: route.consumer,
    attempts: 0,
    maxAttempts: job.maxAttempts,
    diagnostics: { queue: route.subject, consumer: route.consumer },
    createdAt: nowIso,
    updatedAt: nowIso,
    artifacts: [],
    ...(jobMeta(job) ? { meta: jobMeta(job) } : {}),
    request: job,
  };
}

/** The record belongs to this worker's current attempt: the only case a worker may write it. */
export function ownedBy(record: RunRecord, workerId: string, attempt: number): boolean {
  return record.state === "running" && record.workerId === workerId && record.attempts === attempt;
}

/**
 * The agent of the record's current attempt has finished its turn: a running record with
 * `agentFinishedAt` is one whose result is being collected on `workerId`. Written the moment the agent
 * says it is done, before anything is collected, so a worker that takes the run over knows the
 * agent's effect has happened and does not start it again (claim.ts).
 */
export function agentFinished(record: RunRecord, nowIso: string): RunRecord {
  return { ...record, agentFinishedAt: nowIso, updatedAt: nowIso };
}

/** The current attempt's agent has finished (agentFinished) and the run is not yet concluded. */
export function isAgentFinished(record: RunRecord): boolean {
  return record.state === "running" && record.agentFinishedAt !== undefined;
}

export function requeued(record: RunRecord, nowIso: string, nextAttemptAtIso: string, error: RunError, spendAttempt: boolean): RunRecord {
  // The next attempt runs the agent afresh: what this attempt's agent did no longer stands for the run.
  const { workerId: _w, agentFinishedAt: _f, ...rest } = record;
  return {
    ...rest,
    state: "queued",
    attempts: spendAttempt ? record.attempts : Math.max(0, record.attempts - 1),
    nextAttemptAt: nextAttemptAtIso,
    lastError: error,
    updatedAt: nowIso,
  };
}

export function finished(
  record: RunRecord,
  nowIso: string,
  state: Extract<RunState, "succeeded" | "failed" | "cancelled" | "dead_letter">,
  result: {
    outcome: Outcome;
    summary?: string | undefined;
    error?: RunError | undefined;
    durationMs?: number | undefined;
    published?: { branch: string; commit: string; remote: string; pullRequest?: string | undefined } | undefined;
  },
  artifacts: string[] = record.artifacts,
): RunRecord {
  return {
    ...record,
    state,
    finishedAt: nowIso,
    updatedAt: nowIso,
    artifacts: [...new Set([...record.artifacts, ...artifacts])],
    result: Object.fromEntries(Object.entries(result).filter(([, v]) => v !== undefined)) as RunRecord["result"],
    ...(result.error ? { lastError: result.error } : {}),
  };
}

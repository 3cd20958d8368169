/** `ops.runs.list` and `ops.runs.get`: run records from KV `runs`, a run's history from STATUS. */
import { normalizeRepository } from "../routing.js";
import { parseJson } from "../json.js";
import type { RunRecord } from "../schemas/run.js";
import type { RunSummary, RunsGetReply, RunsGetRequest, RunsListReply, RunsListRequestSchema } from "../schemas/ops.js";
import { STREAMS, jobEventFilter } from "../subjects.js";
import type { z } from "zod";
import type { OpsContext } from "./context.js";
import { notFound } from "./errors.js";
import { readRuns } from "./records.js";

/** How many events `ops.runs.get` returns at most (the first ones are kept). */
export const MAX_RUN_EVENTS = 500;

export function summarize(r: RunRecord): RunSummary {
  return {
    jobId: r.jobId,
    state: r.state,
    runtime: r.runtime,
    repository: r.repository,
    shard: r.shard,
    subject: r.subject,
    ...(r.workerId ? { workerId: r.workerId } : {}),
    attempts: r.attempts,
    maxAttempts: r.maxAttempts,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.result ? { outcome: r.result.outcome } : {}),
    ...(r.waiting ? { waiting: r.waiting.reason } : {}),
    ...(r.lastError ? { lastError: `${r.lastError.code}: ${r.lastError.message}` } : {}),
  };
}

function sameRepository(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return normalizeRepository(a) === normalizeRepository(b);
  } catch {
    return false;
  }
}

export async function listRuns(ctx: OpsContext, req: z.output<typeof RunsListRequestSchema>): Promise<RunsListReply> {
  const matching = (await readRuns(ctx)).filter(
    (r) =>
      (req.state === undefined || r.state === req.state) &&
      (req.runtime === undefined || r.runtime === req.runtime) &&
      (req.shard === undefined || r.shard === req.shard) &&
      (req.repository === undefined || sameRepository(r.repository, req.repository)),
  );
  // Newest first: by creation, then by the last change.
  matching.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.updatedAt.localeCompare(a.updatedAt));
  return { runs: matching.slice(0, req.limit).map(summarize), total: matching.length };
}

export async function getRun(ctx: OpsContext, req: RunsGetRequest): Promise<RunsGetReply> {
  const stored = await ctx.runs.get(req.runId);
  if (!stored) throw notFound(`no run ${req.runId}: check the id with 'moonmind runs list' (ops.runs.list)`);
  const { events, truncated } = await runEvents(ctx, req.runId, { states: req.states === true });
  return { record: stored.record, events, truncated };
}

/** The job's events in stream order, at most MAX_RUN_EVENTS, one direct lookup each; its machine's frames only if asked. */
export async function runEvents(
  ctx: OpsContext,
  jobId: string,
  opts: { states?: boolean } = {},
): Promise<{ events: RunsGetReply["events"]; truncated: boolean }> {
  const filter = jobEventFilter(jobId);
  const events: RunsGetReply["events"] = [];
  let seq = 1;
  for (;;) {
    const m = await ctx.jsm.streams.getMessage(STREAMS.status, { next_by_subj: filter, seq } as unknown as { seq: number });
    if (!m) return { events, truncated: false };
    seq = m.seq + 1;
    if (!opts.states && m.subject.endsWith(".state")) continue;
    if (events.length === MAX_RUN_EVENTS) return { events, truncated: true };
    const body = parseJson(m.data);
    events.push({ seq: m.seq, subject: m.subject, event: body !== null && typeof body === "object" ? (body as Record<string, unknown>) : { raw: m.string() } });
  }
}

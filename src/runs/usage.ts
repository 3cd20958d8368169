/** A run's usage: summed per attempt as the agent reports it, kept per attempt on the record. */
import type { RunRecord, RunUsage } from "../schemas/run.js";

/** `b` added to `a` (a codex run reports one usage per turn); the model named by the job when the CLI names none. */
export function addUsage(a: RunUsage | undefined, b: RunUsage, jobModel?: string): RunUsage {
  const model = b.model ?? a?.model ?? jobModel;
  const turns = a?.turns !== undefined || b.turns !== undefined ? (a?.turns ?? 0) + (b.turns ?? 0) : undefined;
  const costUsd = a?.costUsd !== undefined || b.costUsd !== undefined ? (a?.costUsd ?? 0) + (b.costUsd ?? 0) : undefined;
  return {
    inputTokens: (a?.inputTokens ?? 0) + b.inputTokens,
    cachedInputTokens: (a?.cachedInputTokens ?? 0) + b.cachedInputTokens,
    outputTokens: (a?.outputTokens ?? 0) + b.outputTokens,
    ...(turns !== undefined ? { turns } : {}),
    ...(model !== undefined ? { model } : {}),
    ...(costUsd !== undefined ? { costUsd } : {}),
  };
}

/** The record with this attempt's usage in place (written again, it replaces itself: writes are retried). */
export function withAttemptUsage(r: RunRecord, attempt: number, usage: RunUsage): RunRecord {
  const others = (r.usage ?? []).filter((u) => u.attempt !== attempt);
  return { ...r, usage: [...others, { attempt, ...usage }].sort((x, y) => x.attempt - y.attempt) };
}

/** Every attempt's usage of a run, summed. */
export function totalUsage(r: Pick<RunRecord, "usage">): RunUsage | undefined {
  let total: RunUsage | undefined;
  for (const { attempt: _attempt, ...u } of r.usage ?? []) total = addUsage(total, u);
  return total;
}

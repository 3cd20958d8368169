/**
 * `ops.usage`: what the agents reported using, from the run records (every attempt's `usage`),
 * summed per login, runtime, model or repository over a window — which login is near its limit.
 */
import type { z } from "zod";
import { parseSince } from "../cli/follow.js";
import type { RunRecord } from "../schemas/run.js";
import type { UsageReply, UsageRequestSchema, UsageRow } from "../schemas/ops.js";
import type { OpsContext } from "./context.js";
import { readRuns } from "./records.js";

type Totals = Omit<UsageRow, "key" | "lastAt">;

const empty = (): Totals => ({ runs: 0, attempts: 0, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 });

function keyOf(by: UsageReply["by"], r: RunRecord, model: string | undefined): string {
  if (by === "runtime") return r.runtime;
  if (by === "repository") return r.repository;
  if (by === "model") return model ?? "(not reported)";
  return `${r.runtime}:${r.diagnostics.volumeName ?? "?"}`;
}

export async function usage(ctx: OpsContext, req: z.output<typeof UsageRequestSchema>): Promise<UsageReply> {
  const since = parseSince(req.since, ctx.now().getTime());
  const rows = new Map<string, UsageRow>();
  const total = empty();
  for (const r of await readRuns(ctx)) {
    if (!r.usage?.length || (since && r.updatedAt < since.toISOString())) continue;
    const counted = new Set<string>();
    for (const u of r.usage) {
      const key = keyOf(req.by, r, u.model);
      const row = rows.get(key) ?? { key, ...empty(), lastAt: r.updatedAt };
      if (!counted.has(key)) {
        row.runs++;
        counted.add(key);
      }
      row.attempts++;
      row.inputTokens += u.inputTokens;
      row.cachedInputTokens += u.cachedInputTokens;
      row.outputTokens += u.outputTokens;
      if (u.costUsd !== undefined) row.costUsd = (row.costUsd ?? 0) + u.costUsd;
      if (r.updatedAt > row.lastAt) row.lastAt = r.updatedAt;
      rows.set(key, row);
      total.attempts++;
      total.inputTokens += u.inputTokens;
      total.cachedInputTokens += u.cachedInputTokens;
      total.outputTokens += u.outputTokens;
      if (u.costUsd !== undefined) total.costUsd = (total.costUsd ?? 0) + u.costUsd;
    }
    total.runs++;
  }
  // The heaviest first: what an operator looks for.
  const sorted = [...rows.values()].sort((a, b) => b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens) || a.key.localeCompare(b.key));
  return { ...(since ? { since: since.toISOString() } : {}), by: req.by, rows: sorted, total };
}

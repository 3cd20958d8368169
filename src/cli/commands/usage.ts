/** `moonmind usage [--since 24h] [--by login|runtime|model|repository]`: what the agents used (ops.usage). */
import { UsageError } from "../../errors.js";
import { USAGE_GROUPINGS, UsageReplySchema, type UsageReply } from "../../schemas/ops.js";
import { OPS } from "../../subjects.js";
import { opsRequest, withNats, type CliContext } from "../context.js";
import { renderTable, type Colors } from "../table.js";

export interface UsageOptions {
  since?: string;
  by?: string;
  json?: boolean;
}

export async function usageCommand(ctx: CliContext, opts: UsageOptions): Promise<number> {
  const since = opts.since ?? "24h";
  if (!/^(\d+(s|m|h|d)|all)$/.test(since)) throw new UsageError(`--since takes a duration like 30m, 24h, 7d or 'all' (got '${since}')`);
  const by = opts.by ?? "login";
  if (!(USAGE_GROUPINGS as readonly string[]).includes(by)) throw new UsageError(`--by takes ${USAGE_GROUPINGS.join(", ")} (got '${by}')`);
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.usage, { since, by }, UsageReplySchema, { progress: "summing usage" }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderUsage(reply, ctx.terminal.colors));
  return 0;
}

const n = (x: number) => x.toLocaleString("en-US");
const usd = (x: number | undefined) => (x === undefined ? "" : `$${x.toFixed(4)}`);

export function renderUsage(reply: UsageReply, c: Colors): string {
  const window = reply.since ? `since ${reply.since.replace("T", " ").slice(0, 19)} UTC` : "all time";
  if (reply.rows.length === 0) return `no usage reported ${window}`;
  const rows = reply.rows.map((r) => [r.key, r.runs, r.attempts, n(r.inputTokens), n(r.cachedInputTokens), n(r.outputTokens), usd(r.costUsd), r.lastAt.replace("T", " ").slice(5, 19)]);
  const t = reply.total;
  rows.push([c.dim("total"), t.runs, t.attempts, n(t.inputTokens), n(t.cachedInputTokens), n(t.outputTokens), usd(t.costUsd), ""]);
  return `${renderTable([reply.by.toUpperCase(), "RUNS", "ATTEMPTS", "INPUT", "CACHED", "OUTPUT", "COST", "LAST"], rows, c)}\n${c.dim(window)}`;
}

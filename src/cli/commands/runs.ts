/** `moonmind runs list|get|cancel|retry|preflight`: runs over the ops service (ops.runs.*). */
import { UsageError } from "../../errors.js";
import {
  RunsCancelReplySchema,
  RunsGetReplySchema,
  RunsListReplySchema,
  RunsPreflightReplySchema,
  RunsRetryReplySchema,
  type RunsGetReply,
  type RunsListReply,
  type RunsPreflightReply,
  type RunsListRequest,
} from "../../schemas/ops.js";
import { JobEventSchema } from "../../schemas/events.js";
import { RUN_STATES, type RunState } from "../../schemas/run.js";
import { RuntimeSchema } from "../../schemas/runtime.js";
import { OPS } from "../../subjects.js";
import { opsRequest, parseIntOption, parseJobId, withNats, type CliContext } from "../context.js";
import { jobLine } from "../render.js";
import { paintState, renderPairs, renderTable, shortTime, type Colors } from "../table.js";

export interface RunsListOptions {
  state?: string;
  runtime?: string;
  repository?: string;
  shard?: string;
  limit?: string;
  json?: boolean;
}

export function runsListRequest(opts: RunsListOptions): RunsListRequest {
  const req: RunsListRequest = {};
  if (opts.state !== undefined) {
    if (!RUN_STATES.includes(opts.state as RunState)) throw new UsageError(`--state must be one of ${RUN_STATES.join(", ")} (got '${opts.state}')`);
    req.state = opts.state as RunState;
  }
  if (opts.runtime !== undefined) {
    const r = RuntimeSchema.safeParse(opts.runtime);
    if (!r.success) throw new UsageError(`--runtime must be one of codex, claude, gemini (got '${opts.runtime}')`);
    req.runtime = r.data;
  }
  if (opts.repository !== undefined) req.repository = opts.repository;
  const shard = parseIntOption("--shard", opts.shard, 0);
  if (shard !== undefined) req.shard = shard;
  const limit = parseIntOption("--limit", opts.limit, 1);
  if (limit !== undefined) {
    if (limit > 1_000) throw new UsageError("--limit must be at most 1000");
    req.limit = limit;
  }
  return req;
}

export async function runsListCommand(ctx: CliContext, opts: RunsListOptions): Promise<number> {
  const req = runsListRequest(opts);
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.runsList, req, RunsListReplySchema, { progress: "listing runs" }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderRunsList(reply, ctx.terminal.colors));
  return 0;
}

export function renderRunsList(reply: RunsListReply, c: Colors): string {
  if (reply.runs.length === 0) return "no runs";
  const rows = reply.runs.map((r) => [
    r.jobId,
    paintState(r.state, c),
    r.runtime,
    r.shard,
    r.repository,
    `${r.attempts}/${r.maxAttempts}`,
    shortTime(r.updatedAt),
    r.waiting ? c.yellow(`waiting: ${r.waiting}`) : r.lastError && r.state !== "succeeded" ? r.lastError : (r.outcome ?? ""),
  ]);
  const table = renderTable(["ID", "STATE", "RUNTIME", "SHARD", "REPOSITORY", "ATTEMPTS", "UPDATED", "NOTE"], rows, c);
  return reply.total > reply.runs.length ? `${table}\n${c.dim(`${reply.runs.length} of ${reply.total} (--limit for more)`)}` : table;
}

export async function runsGetCommand(ctx: CliContext, rawId: string, opts: { json?: boolean }): Promise<number> {
  const runId = parseJobId(rawId, "run id");
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.runsGet, { runId }, RunsGetReplySchema, { progress: `reading run ${runId}` }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderRun(reply, ctx.terminal.colors));
  return 0;
}

export function renderRun(reply: RunsGetReply, c: Colors): string {
  const r = reply.record;
  const pairs = renderPairs(
    [
      ["id", r.jobId],
      ["state", paintState(r.state, c)],
      ["waiting", r.waiting ? `${r.waiting.reason} (since ${shortTime(r.waiting.since)})` : undefined],
      ["runtime", r.runtime],
      ["repository", r.repository],
      ["shard", `${r.subject} (consumer ${r.consumer})`],
      ["worker", r.workerId],
      ["attempts", `${r.attempts} of ${r.maxAttempts}`],
      ["preflight", r.preflight ? `${paintState(r.preflight.status, c)} ${r.preflight.message} (${shortTime(r.preflight.checkedAt)})` : undefined],
      ["volume", r.diagnostics.volumeName ? `${r.diagnostics.volumeName}${r.diagnostics.volumePath ? ` at ${r.diagnostics.volumePath}` : ""}` : undefined],
      ["outcome", r.result ? `${r.result.outcome}${r.result.summary ? `: ${oneLine(r.result.summary)}` : ""}` : undefined],
      ["last error", r.lastError ? `${r.lastError.code}: ${r.lastError.message}` : undefined],
      ["artifacts", r.artifacts.length > 0 ? r.artifacts.join(" ") : undefined],
      ["created", r.createdAt],
      ["updated", r.updatedAt],
      ["finished", r.finishedAt],
    ],
    c,
  );
  const events = reply.events.map((e) => {
    const parsed = JobEventSchema.safeParse(e.event);
    return parsed.success ? jobLine(parsed.data) : `${e.subject} ${JSON.stringify(e.event)}`;
  });
  return `${pairs}\n\n${c.bold("events")}${reply.truncated ? c.dim(" (first ones only)") : ""}\n${events.length > 0 ? events.join("\n") : c.dim("none stored")}`;
}

export async function runsCancelCommand(ctx: CliContext, rawId: string, opts: { reason?: string; json?: boolean }): Promise<number> {
  const runId = parseJobId(rawId, "run id");
  const body = opts.reason === undefined ? { runId } : { runId, reason: opts.reason };
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.runsCancel, body, RunsCancelReplySchema, { progress: `cancelling ${runId}` }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else if (reply.state === "cancelled") ctx.out(`${runId} cancelled (it was queued; it will not start)`);
  else ctx.out(`${runId} cancelling: worker ${reply.workerId} is stopping it; \`cancelled\` follows on its events (moonmind watch ${runId})`);
  return 0;
}

export async function runsRetryCommand(ctx: CliContext, rawId: string, opts: { json?: boolean }): Promise<number> {
  const runId = parseJobId(rawId, "run id");
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.runsRetry, { runId }, RunsRetryReplySchema, { progress: `retrying ${runId}` }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(`${runId} queued again as attempt ${reply.attempt} on ${reply.subject} (moonmind watch ${runId} --since 1m)`);
  return 0;
}

export async function runsPreflightCommand(ctx: CliContext, rawId: string, opts: { forceRefresh?: boolean; json?: boolean }): Promise<number> {
  const runId = parseJobId(rawId, "run id");
  const body = opts.forceRefresh ? { runId, forceRefresh: true } : { runId };
  const reply = await withNats(ctx, (nc) =>
    opsRequest(ctx, nc, OPS.runsPreflight, body, RunsPreflightReplySchema, { timeoutMs: 60_000, progress: `preflight for ${runId}` }),
  );
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderPreflight(reply, ctx.terminal.colors));
  return reply.status === "failed" ? 1 : 0;
}

export function renderPreflight(p: RunsPreflightReply, c: Colors): string {
  return renderPairs(
    [
      ["run", p.runId],
      ["status", paintState(p.status, c)],
      ["message", p.message],
      ["subject", p.subject],
      ["volume", p.volumeName],
      ["checked", `${p.checkedAt}${p.cached ? " (stored result; --force-refresh to re-run)" : p.workerId ? ` on ${p.workerId}` : ""}`],
    ],
    c,
  );
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, " ").trim();
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
}

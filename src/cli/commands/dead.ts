/** `moonmind dead ls|replay`: dead letters and their reasons, and re-submitting one (ops.dead.*). */
import { UsageError } from "../../errors.js";
import { DeadListReplySchema, DeadReplayReplySchema, type DeadListReply } from "../../schemas/ops.js";
import { OPS } from "../../subjects.js";
import { opsRequest, parseIntOption, parseJobId, withNats, type CliContext } from "../context.js";
import { renderTable, shortTime, type Colors } from "../table.js";

export async function deadListCommand(ctx: CliContext, opts: { limit?: string; json?: boolean }): Promise<number> {
  const limit = parseIntOption("--limit", opts.limit, 1);
  if (limit !== undefined && limit > 1_000) throw new UsageError("--limit must be at most 1000");
  const reply = await withNats(ctx, (nc) =>
    opsRequest(ctx, nc, OPS.deadList, limit === undefined ? {} : { limit }, DeadListReplySchema, { progress: "listing dead letters" }),
  );
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderDead(reply, ctx.terminal.colors));
  return 0;
}

export function renderDead(reply: DeadListReply, c: Colors): string {
  if (reply.letters.length === 0) return "no dead letters";
  const rows = reply.letters.map(({ seq, letter }) => [seq, letter.jobId, shortTime(letter.at), letter.stage, letter.field ? `${letter.reason} (${letter.field})` : letter.reason]);
  const table = renderTable(["SEQ", "JOB", "AT", "STAGE", "REASON"], rows, c);
  return reply.total > reply.letters.length ? `${table}\n${c.dim(`${reply.letters.length} of ${reply.total} (--limit for more)`)}` : table;
}

export async function deadReplayCommand(ctx: CliContext, rawId: string | undefined, opts: { seq?: string; json?: boolean }): Promise<number> {
  const seq = parseIntOption("--seq", opts.seq, 1);
  if ((rawId === undefined) === (seq === undefined)) throw new UsageError("give a job id or --seq N (one of the two)");
  const body = seq !== undefined ? { seq } : { jobId: parseJobId(rawId as string) };
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.deadReplay, body, DeadReplayReplySchema, { progress: "replaying" }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(`replayed dead letter ${reply.letter.seq} (${reply.letter.letter.jobId}: ${reply.letter.letter.reason}) as ${reply.newJobId} — moonmind watch ${reply.newJobId}`);
  return 0;
}

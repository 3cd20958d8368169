/** `moonmind shards [--runtime R]`: every shard's queue depth, who serves it, and why not (ops.shards). */
import { UsageError } from "../../errors.js";
import { ShardsReplySchema, type ShardHealth, type ShardsReply } from "../../schemas/ops.js";
import { RuntimeSchema } from "../../schemas/runtime.js";
import { OPS } from "../../subjects.js";
import { opsRequest, withNats, type CliContext } from "../context.js";
import { formatDuration, paintState, renderTable, type Colors } from "../table.js";

export interface ShardsOptions {
  runtime?: string;
  json?: boolean;
}

export async function shardsCommand(ctx: CliContext, opts: ShardsOptions): Promise<number> {
  const runtime = opts.runtime === undefined ? undefined : RuntimeSchema.safeParse(opts.runtime);
  if (runtime && !runtime.success) throw new UsageError(`--runtime must be one of codex, claude, gemini (got '${opts.runtime}')`);
  const reply = await withNats(ctx, (nc) =>
    opsRequest(ctx, nc, OPS.shards, runtime ? { runtime: runtime.data } : {}, ShardsReplySchema, { progress: "reading shard health" }),
  );
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderShards(reply, ctx.terminal.colors));
  return 0;
}

export function renderShards(reply: ShardsReply, c: Colors): string {
  if (reply.shards.length === 0) return "no shards";
  const rows = reply.shards.map((s) => [
    s.flag ? c.red(s.subject) : s.subject,
    s.queued ?? "",
    s.pending,
    s.ackPending,
    s.redelivered,
    s.oldestWaitingMs === undefined ? "" : formatDuration(s.oldestWaitingMs),
    workersCell(s, c),
    s.volumeName,
    s.latestRun ? `${s.latestRun.jobId} ${paintState(s.latestRun.state, c)}` : "",
  ]);
  const table = renderTable(["SHARD", "QUEUED", "PENDING", "ACK PENDING", "REDELIVERED", "OLDEST", "WORKERS", "VOLUME", "LATEST RUN"], rows, c);
  const notes = reply.shards.flatMap((s) => [
    ...(s.flag ? [`${c.red("!")} ${s.subject}: ${s.flag}`] : []),
    ...(s.error ? [`${c.yellow("?")} ${s.subject}: ${s.error}`] : []),
    // A login at its plan's usage limit says until when, even with nothing waiting yet.
    ...(s.flag ? [] : s.workers.filter((w) => w.auth?.state === "limited").map((w) => `${c.yellow("~")} ${s.subject}: ${w.workerId}: ${w.auth!.message}`)),
  ]);
  return notes.length === 0 ? table : `${table}\n\n${notes.join("\n")}`;
}

function workersCell(s: ShardHealth, c: Colors): string {
  if (s.workers.length === 0) return c.dim("none");
  return s.workers
    .map((w) => {
      const auth = w.auth ? ` ${w.auth.state}` : "";
      const text = `${w.workerId} (${w.state}${auth})`;
      return w.ready ? c.green(text) : c.yellow(text);
    })
    .join(", ");
}

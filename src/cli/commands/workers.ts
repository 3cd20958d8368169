/** `moonmind workers`: every live worker, its logins' auth state and what it runs (ops.workers). */
import { WorkersReplySchema, type WorkersReply } from "../../schemas/ops.js";
import { OPS } from "../../subjects.js";
import { opsRequest, withNats, type CliContext } from "../context.js";
import { formatDuration, paintState, renderTable, type Colors } from "../table.js";

export interface WorkersOptions {
  json?: boolean;
}

export async function workersCommand(ctx: CliContext, opts: WorkersOptions): Promise<number> {
  const reply = await withNats(ctx, (nc) => opsRequest(ctx, nc, OPS.workers, {}, WorkersReplySchema, { progress: "listing workers" }));
  if (opts.json) ctx.out(JSON.stringify(reply));
  else ctx.out(renderWorkers(reply, ctx.terminal.colors));
  return 0;
}

export function renderWorkers(reply: WorkersReply, c: Colors): string {
  if (reply.workers.length === 0) return "no live workers";
  const rows = reply.workers.map((w) => [
    w.live ? w.workerId : c.dim(`${w.workerId} (silent)`),
    paintState(w.state, c),
    w.runtimes.join(","),
    w.shards.join(" "),
    Object.entries(w.auth)
      .map(([login, a]) => `${login} ${paintState(a.state, c)}`)
      .join("\n"),
    w.inFlight.length === 0 ? "" : `${w.inFlight.length}/${w.concurrency}: ${w.inFlight.join(" ")}`,
    w.version,
    formatDuration(w.uptimeMs),
  ]);
  return renderTable(["WORKER", "STATE", "RUNTIMES", "SHARDS", "LOGINS", "RUNNING", "VERSION", "UP"], rows, c);
}

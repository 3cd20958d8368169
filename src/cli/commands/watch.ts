/** `moonmind watch [jobId]`: status history from STATUS, then live; one job's ends with the job. */
import { jobEventFilter } from "../../subjects.js";
import type { CliContext } from "../context.js";
import { followStatus, parseSince } from "../follow.js";
import { isTerminal, jobLine, workerLine } from "../render.js";
import { UsageError } from "../../errors.js";

export interface WatchOptions {
  json?: boolean;
  since?: string;
  workers?: boolean;
  follow?: boolean;
}

export async function watchCommand(ctx: CliContext, jobId: string | undefined, opts: WatchOptions): Promise<number> {
  let since: Date | undefined;
  try {
    since = parseSince(opts.since ?? (jobId ? "all" : "10m"));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const filter = jobId ? jobEventFilter(jobId) : opts.workers ? "status.>" : jobEventFilter();
  const nc = await ctx.connect();
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  try {
    for await (const item of followStatus(nc, { filter, signal: controller.signal, ...(since ? { since } : {}) })) {
      if (opts.json) ctx.out(JSON.stringify(item.event));
      else ctx.out(item.kind === "job" ? jobLine(item.event) : workerLine(item.event));
      // One job's story ends with its terminal event, unless asked to keep following (retries of a replay).
      if (jobId && item.kind === "job" && isTerminal(item.event) && !opts.follow) {
        return item.event.type === "succeeded" ? 0 : 1;
      }
    }
    return 0;
  } finally {
    process.off("SIGINT", onSignal);
    await nc.drain().catch(() => undefined);
  }
}

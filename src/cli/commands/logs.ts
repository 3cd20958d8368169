/**
 * `moonmind logs <id> [--follow]`: the job's agent output from LOGS (`logs.jobs.<id>` batches),
 * replayed from the start; with --follow, then live until the job ends.
 */
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
import { MoonmindError } from "../../errors.js";
import { parseJson } from "../../json.js";
import { RunRecordSchema, TERMINAL_RUN_STATES } from "../../schemas/run.js";
import { permissionViolation } from "../../nats/errors.js";
import { BUCKETS, STREAMS, jobEventFilter, jobLogSubject } from "../../subjects.js";
import { parseJobId, readRunRecord, withNats, type CliContext } from "../context.js";
import { startProgress } from "../table.js";

export interface LogsOptions {
  follow?: boolean;
  json?: boolean;
}

const LogBatchSchema = z.object({ jobId: z.string(), seq: z.number().int(), at: z.string(), lines: z.array(z.string()) });
type LogBatch = z.infer<typeof LogBatchSchema>;

/** How long --follow keeps reading after the job ended, for the last batches in flight. */
const TAIL_MS = 750;

export async function logsCommand(ctx: CliContext, rawId: string, opts: LogsOptions): Promise<number> {
  const jobId = parseJobId(rawId);
  return withNats(ctx, async (nc) => {
    const record = await readRunRecord(nc, jobId);
    let printed = 0;
    const print = (b: LogBatch) => {
      printed += b.lines.length;
      if (opts.json) ctx.out(JSON.stringify(b));
      else for (const line of b.lines) ctx.out(line);
    };

    const follow = opts.follow === true && !(record && TERMINAL_RUN_STATES.includes(record.state));
    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once("SIGINT", onSignal);
    const ended = follow ? watchUntilEnded(nc, jobId, controller) : undefined;
    const progress = follow ? startProgress(ctx.terminal, `following ${jobId} (${record?.state ?? "not started"}); Ctrl-C to stop`) : undefined;
    try {
      for await (const batch of readLogs(nc, jobId, { follow, signal: controller.signal })) {
        progress?.stop();
        print(batch);
      }
    } finally {
      progress?.stop();
      process.off("SIGINT", onSignal);
      controller.abort();
      await ended?.catch(() => undefined);
    }
    if (printed === 0 && !record) {
      throw new MoonmindError(`no job ${jobId}: no run record in KV ${BUCKETS.runs} and no output on ${jobLogSubject(jobId)}`, {
        remedy: "check the id (moonmind runs list)",
      });
    }
    if (printed === 0 && !opts.json) ctx.err(`no output stored for ${jobId} (state ${record?.state}; LOGS keeps 24 h)`);
    return 0;
  });
}

/** Aborts `controller` a moment after the job's run record reaches a terminal state. */
async function watchUntilEnded(nc: NatsConnection, jobId: string, controller: AbortController): Promise<void> {
  const kv = await new Kvm(nc).open(BUCKETS.runs);
  let watch;
  try {
    watch = await kv.watch({ key: jobId });
  } catch (err) {
    // A login that may not read run records (nats.conf's submitter) hears the job's own end instead.
    if (!permissionViolation(err)) throw err;
    return endedEvent(nc, jobId, controller);
  }
  const stop = () => watch.stop();
  controller.signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      const r = RunRecordSchema.safeParse(e.json());
      if (r.success && TERMINAL_RUN_STATES.includes(r.data.state)) {
        setTimeout(() => controller.abort(), TAIL_MS).unref();
        return;
      }
    }
  } finally {
    controller.signal.removeEventListener("abort", stop);
    watch.stop();
  }
}

async function endedEvent(nc: NatsConnection, jobId: string, controller: AbortController): Promise<void> {
  const sub = nc.subscribe(jobEventFilter(jobId));
  const stop = () => sub.unsubscribe();
  controller.signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const msg of sub) {
      const type = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
      if (type === "succeeded" || type === "failed" || type === "cancelled") {
        setTimeout(() => controller.abort(), TAIL_MS).unref();
        return;
      }
    }
  } finally {
    controller.signal.removeEventListener("abort", stop);
    sub.unsubscribe();
  }
}

/** The stored batches in order; with `follow`, then the live ones until `signal` aborts. */
export async function* readLogs(
  nc: NatsConnection,
  jobId: string,
  opts: { follow: boolean; signal: AbortSignal },
): AsyncGenerator<LogBatch> {
  const consumer = await jetstream(nc).consumers.get(STREAMS.logs, {
    filter_subjects: jobLogSubject(jobId),
    deliver_policy: DeliverPolicy.All,
  });
  if (!opts.follow) {
    const info = await consumer.info(true);
    if (info.num_pending === 0) return;
  }
  const messages = await consumer.consume();
  const stop = () => void messages.close();
  if (opts.signal.aborted) stop();
  opts.signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const m of messages) {
      const parsed = LogBatchSchema.safeParse(parseJson(m.data));
      if (parsed.success) yield parsed.data;
      if (!opts.follow && m.info.pending === 0) break;
    }
  } finally {
    opts.signal.removeEventListener("abort", stop);
    await messages.close().catch(() => undefined);
  }
}

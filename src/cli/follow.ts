/**
 * Reading status events as history and live in one ordered stream: an ordered consumer on
 * STATUS replays what is stored and goes on with what arrives, with no gap between the two.
 */
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  JobEventSchema,
  SubmissionEventSchema,
  WorkerEventSchema,
  type JobEvent,
  type SubmissionEvent,
  type WorkerEvent,
} from "../schemas/events.js";
import { parseJson } from "../json.js";
import { STREAMS } from "../subjects.js";

export type StatusEvent =
  | { kind: "job"; event: JobEvent }
  | { kind: "worker"; event: WorkerEvent }
  | { kind: "submission"; event: SubmissionEvent };

export interface FollowOptions {
  /** One subject filter or several (status.jobs.<id>.* and status.submissions.<id>.*, say). */
  filter: string | string[];
  /** Replay from this time; undefined replays everything stored. `"new"` starts with the next event. */
  since?: Date | "new";
  signal?: AbortSignal;
  /** Called once every event stored when the follow began has been delivered (at once when there were none). */
  onReplayed?: () => void;
}

export async function* followStatus(nc: NatsConnection, opts: FollowOptions): AsyncGenerator<StatusEvent> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(STREAMS.status, {
    filter_subjects: opts.filter,
    ...(opts.since === "new"
      ? { deliver_policy: DeliverPolicy.New }
      : opts.since
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.since.toISOString() }
        : { deliver_policy: DeliverPolicy.All }),
  });
  let replayed = opts.onReplayed;
  const caughtUp = () => {
    replayed?.();
    replayed = undefined;
  };
  if (replayed && (await consumer.info(true)).num_pending === 0) caughtUp();
  const messages = await consumer.consume();
  const stop = () => void messages.close();
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener("abort", stop, { once: true });
  try {
    for await (const m of messages) {
      const data = parseJson(m.data);
      // Past the last stored one once nothing is pending; the item itself is yielded first below.
      const last = replayed !== undefined && m.info.pending === 0;
      if (m.subject.startsWith("status.jobs.")) {
        const parsed = JobEventSchema.safeParse(data);
        if (parsed.success) yield { kind: "job", event: parsed.data };
      } else if (m.subject.startsWith("status.workers.")) {
        const parsed = WorkerEventSchema.safeParse(data);
        if (parsed.success) yield { kind: "worker", event: parsed.data };
      } else if (m.subject.startsWith("status.submissions.")) {
        const parsed = SubmissionEventSchema.safeParse(data);
        if (parsed.success) yield { kind: "submission", event: parsed.data };
      }
      if (last) caughtUp();
    }
  } finally {
    opts.signal?.removeEventListener("abort", stop);
    await messages.close().catch(() => undefined);
  }
}


/** Parses `10m`, `2h`, `1d`, `30s` into a start time; `all` means everything stored. */
export function parseSince(value: string, now = Date.now()): Date | undefined {
  if (value === "all") return undefined;
  const m = /^(\d+)(s|m|h|d)$/.exec(value);
  if (!m) throw new Error(`--since '${value}' is not a duration like 30s, 10m, 2h, 1d or 'all'`);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return new Date(now - Number(m[1]) * unit);
}

/** How many events STATUS holds under `filter` (a wildcard subject), without reading them. */
export async function countStored(nc: NatsConnection, filter: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAMS.status, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

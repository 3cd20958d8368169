/** Waiting on status events, with bounded timeouts, instead of sleeping. */
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { JobEventSchema, type JobEvent } from "../../src/schemas/events.js";
import { jobEventFilter } from "../../src/subjects.js";

export interface EventLog {
  events: JobEvent[];
  /** Resolves with the first event (seen already or later) that matches, or rejects after `timeoutMs`. */
  waitFor(match: (e: JobEvent) => boolean, timeoutMs?: number): Promise<JobEvent>;
  close(): void;
}

/**
 * Records every job event from now on (core subscription; parsed with the published schema).
 * The machine's `state` frames (the live view's source) only with `states: true`, so a test of
 * what a job did reads its story, not its machine's every step.
 */
export function recordJobEvents(nc: NatsConnection, jobId = "*", opts: { states?: boolean } = {}): EventLog {
  const events: JobEvent[] = [];
  const waiters: Array<{ match: (e: JobEvent) => boolean; resolve: (e: JobEvent) => void }> = [];
  const sub: Subscription = nc.subscribe(jobEventFilter(jobId), {
    callback: (_err, msg) => {
      const event = JobEventSchema.parse(msg.json());
      if (event.type === "state" && !opts.states) return;
      events.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    },
  });
  return {
    events,
    waitFor(match, timeoutMs = 15_000) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`no matching event within ${timeoutMs} ms; saw: ${events.map((e) => `${e.jobId}.${e.type}`).join(", ")}`));
          }
        }, timeoutMs).unref();
      });
    },
    close: () => sub.unsubscribe(),
  };
}

/**
 * A message that ran out of `max_deliver` stays in a work-queue stream (nats-server 2.9 and 2.10
 * alike) and nobody will ever get it again. JetStream announces it with an advisory; one intake
 * replica (queue group) records the run as dead_letter, copies the job to DEAD and deletes the
 * message, so the queue never silently holds a job forever.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { StatusPublisher } from "../../src/events.js";
import { parseJson } from "../../src/json.js";
import type { Logger } from "../../src/logger.js";
import { finished } from "../../src/runs/record.js";
import type { RunStore } from "../../src/runs/store.js";
import { TERMINAL_RUN_STATES } from "../../src/schemas/run.js";
import { redact, redactText } from "../../src/secrets.js";
import { INTAKE_CONSUMER, INTAKE_QUEUE, STREAMS, maxDeliveriesAdvisory } from "../../src/subjects.js";

interface Advisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

export class MaxDeliveriesWatcher {
  private sub: Subscription | undefined;
  private pending = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly runs: RunStore,
    private readonly publisher: StatusPublisher,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.sub = this.nc.subscribe(maxDeliveriesAdvisory(STREAMS.jobs), {
      queue: INTAKE_QUEUE,
      callback: (_err, msg) => {
        const p = this.handle(msg.json<Advisory>())
          .catch((err: unknown) => this.log.error({ err }, "could not dead-letter a message out of deliveries"))
          .finally(() => this.pending.delete(p));
        this.pending.add(p);
      },
    });
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    await Promise.allSettled([...this.pending]);
  }

  async handle(advisory: Advisory): Promise<void> {
    const seq = advisory.stream_seq;
    const stored = await this.jsm.streams.getMessage(STREAMS.jobs, { seq }).catch(() => null);
    if (!stored) return; // settled meanwhile
    const text = new TextDecoder().decode(stored.data);
    const payload = parseJson(text) ?? redactText(text.slice(0, 4_096));
    const id = (payload as { id?: unknown } | null)?.id;
    const jobId = typeof id === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(id) ? id : `seq-${seq}`;
    const reason = `delivered ${advisory.deliveries} times on consumer ${advisory.consumer} without being settled (MOONMIND_MAX_DELIVER)`;
    const error = { code: "MAX_DELIVERIES", message: reason };

    await this.publisher.dead({
      jobId,
      stage: advisory.consumer === INTAKE_CONSUMER ? "intake" : "worker",
      reason,
      subject: stored.subject,
      original: typeof payload === "string" ? payload : redact(payload),
    });
    if (advisory.consumer === INTAKE_CONSUMER) {
      await this.publisher.job(jobId, { type: "rejected", reason });
    } else {
      const now = new Date().toISOString();
      const updated = await this.runs
        .update(jobId, (r) => (TERMINAL_RUN_STATES.includes(r.state) ? undefined : finished(r, now, "dead_letter", { outcome: "FAILED", error })))
        .catch(() => undefined);
      if (updated && updated.record.state === "dead_letter") {
        await this.publisher.job(jobId, { type: "failed", state: "dead_letter", attempt: updated.record.attempts, error }, updated.record.meta);
      }
    }
    await this.jsm.streams.deleteMessage(STREAMS.jobs, seq, false).catch(() => false);
    this.log.warn({ jobId, seq, consumer: advisory.consumer, deliveries: advisory.deliveries }, "message ran out of deliveries; dead-lettered");
  }
}

/**
 * Intake: the durable consumer `intake` on jobs.submit. Each message is validated and either
 * rejected (event + DEAD copy + term: never redelivered) or routed (run record by KV create,
 * publish to its shard subject with Nats-Msg-Id = job id, so a duplicate runs once).
 * Any replica may take any message; nothing here depends on which one does.
 */
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import type { Config } from "../../src/config.js";
import { StatusPublisher } from "../../src/events.js";
import type { Logger } from "../../src/logger.js";
import { route } from "../../src/routing.js";
import { newRunRecord } from "../../src/runs/record.js";
import { RunStore } from "../../src/runs/store.js";
import { jobMeta, type JobRequest } from "../../src/schemas/job.js";
import { parseSubmission, type SubmissionOptions } from "../../src/submission.js";
import { BUCKETS, INTAKE_CONSUMER, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { MaxDeliveriesWatcher } from "./max-deliveries.js";

export type IntakeOutcome =
  | { kind: "routed"; jobId: string; subject: string; duplicate: boolean }
  | { kind: "rejected"; jobId: string; reason: string };

export class Intake implements AsyncDisposable {
  private readonly js: JetStreamClient;
  private readonly publisher: StatusPublisher;
  private readonly options: SubmissionOptions;
  private runs!: RunStore;
  private messages: ConsumerMessages | undefined;
  private watcher: MaxDeliveriesWatcher | undefined;
  private loop: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.js = jetstream(nc);
    this.publisher = new StatusPublisher(this.js);
    this.options = {
      maxPayloadBytes: config.env.MOONMIND_MAX_PAYLOAD_BYTES,
      defaultRuntime: config.env.MOONMIND_DEFAULT_TASK_RUNTIME,
      allowLocalRepos: config.env.MOONMIND_ALLOW_LOCAL_REPOS,
    };
  }

  async start(): Promise<void> {
    this.runs = new RunStore(await new Kvm(this.nc).open(BUCKETS.runs));
    this.watcher = new MaxDeliveriesWatcher(this.nc, await jetstreamManager(this.nc), this.runs, this.publisher, this.log);
    this.watcher.start();
    const consumer = await this.js.consumers.get(STREAMS.jobs, INTAKE_CONSUMER);
    this.messages = await consumer.consume({ max_messages: 64 });
    this.loop = (async () => {
      for await (const msg of this.messages!) await this.handle(msg);
    })();
    this.log.info({ subject: SUBJECTS.submit, consumer: INTAKE_CONSUMER }, "intake serving");
  }

  /** Never throws: a failure of ours (not the input's) hands the message back for another try. */
  async handle(msg: JsMsg): Promise<IntakeOutcome | undefined> {
    try {
      const parsed = parseSubmission(msg.data, this.options);
      if (!parsed.ok) {
        // The DEAD copy first: whoever sees the event can rely on it.
        await this.publisher.dead({
          jobId: parsed.jobId,
          stage: "intake",
          reason: parsed.reason,
          ...(parsed.field === undefined ? {} : { field: parsed.field }),
          subject: msg.subject,
          original: parsed.original,
          ...(parsed.truncated ? { truncated: true } : {}),
        });
        await this.publisher.job(parsed.jobId, {
          type: "rejected",
          reason: parsed.reason,
          ...(parsed.field === undefined ? {} : { field: parsed.field }),
        });
        msg.term();
        this.log.info({ jobId: parsed.jobId, reason: parsed.reason }, "job rejected");
        return { kind: "rejected", jobId: parsed.jobId, reason: parsed.reason };
      }
      const outcome = await this.route(parsed.job);
      await msg.ackAck();
      return outcome;
    } catch (err) {
      this.log.error({ err, seq: msg.seq }, "intake could not process a message; it will be redelivered");
      msg.nak(2_000);
      return undefined;
    }
  }

  private async route(job: JobRequest): Promise<IntakeOutcome> {
    const runtime = job.targetRuntime;
    const r = route(runtime, job.repository, this.config.shardCounts[runtime], job.affinityKey);
    const now = new Date().toISOString();
    const created = await this.runs.create(newRunRecord(job, r, now));
    if (!created) {
      // Same id again: a duplicate submission or our own redelivery. Re-publish what was stored;
      // JetStream drops it if the first publish landed (Nats-Msg-Id), a worker skips it if it ran.
      const existing = await this.runs.get(job.id);
      if (existing) {
        const ack = await this.js.publish(existing.record.subject, JSON.stringify(existing.record.request), { msgID: job.id });
        this.log.info({ jobId: job.id, state: existing.record.state, deduped: ack.duplicate }, "duplicate job id; not run again");
        return { kind: "routed", jobId: job.id, subject: existing.record.subject, duplicate: true };
      }
    }
    const meta = jobMeta(job);
    await this.publisher.job(job.id, { type: "accepted", runtime, repository: job.repository }, meta);
    const ack = await this.js.publish(r.subject, JSON.stringify(job), { msgID: job.id });
    if (ack.duplicate) {
      // The run record is new, so this id was never routed: the submission itself carried
      // Nats-Msg-Id = job id, which shares JOBS's dedupe window. Route it under a distinct id.
      await this.js.publish(r.subject, JSON.stringify(job), { msgID: `${job.id}.routed` });
      this.log.warn({ jobId: job.id }, "submission used the job id as Nats-Msg-Id; use another value (e.g. submit-<id>)");
    }
    await this.publisher.job(job.id, {
      type: "routed",
      runtime,
      shard: r.shard,
      subject: r.subject,
      consumer: r.consumer,
      key: r.key,
    }, meta);
    this.log.info({ jobId: job.id, subject: r.subject }, "job routed");
    return { kind: "routed", jobId: job.id, subject: r.subject, duplicate: false };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.messages?.close();
        await this.loop;
        await this.watcher?.stop();
      } catch (err) {
        this.log.warn({ err }, "closing the intake consumer failed");
      }
      await this.nc.drain().catch(() => undefined);
      this.log.info("intake stopped");
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Intake: the durable consumer `intake` on jobs.submit. Each message is validated and either
 * rejected (event + DEAD copy + term: never redelivered, whatever the bytes) or routed (run record
 * by KV create, publish to its shard subject with Nats-Msg-Id = job id, so a duplicate runs once).
 * Only intake's own failures (the server unreachable, a timeout) hand a message back.
 * Any replica may take any message; nothing here depends on which one does.
 *
 * Messages are pipelined (./pipeline.ts): up to MOONMIND_INTAKE_INFLIGHT at once, but one job id
 * at a time, in delivery order, so a duplicate or a redelivery never races the first copy and a
 * job's events keep their order.
 */
import { jetstream, jetstreamManager, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { closeConnection } from "../../src/nats/connect.js";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import type { Config } from "../../src/config.js";
import { StatusPublisher } from "../../src/events.js";
import type { Logger } from "../../src/logger.js";
import { normalizeRepository, route, type Route } from "../../src/routing.js";
import { newRunRecord } from "../../src/runs/record.js";
import { RunStore } from "../../src/runs/store.js";
import type { RunRecord } from "../../src/schemas/run.js";
import { jobMeta, type JobRequest } from "../../src/schemas/job.js";
import { redactText } from "../../src/secrets.js";
import { newJobId, parseSubmission, type SubmissionOptions, type SubmissionResult } from "../../src/submission.js";
import { BUCKETS, INTAKE_CONSUMER, STREAMS, SUBJECTS, submissionEventSubject } from "../../src/subjects.js";
import { canonicalJson } from "../../src/json.js";
import { WorkerDirectory } from "../../src/workers/directory.js";
import { MaxDeliveriesWatcher } from "./max-deliveries.js";
import { KeyedPipeline } from "./pipeline.js";

type Rejection = Extract<SubmissionResult, { ok: false }>;
interface Routable {
  ok: true;
  job: JobRequest;
  route: Route;
  record: RunRecord;
}

export type IntakeOutcome =
  | { kind: "routed"; jobId: string; subject: string; duplicate: boolean }
  | { kind: "rejected"; jobId: string; reason: string };

export class Intake implements AsyncDisposable {
  private readonly js: JetStreamClient;
  private readonly publisher: StatusPublisher;
  private readonly options: SubmissionOptions;
  private readonly pipeline: KeyedPipeline;
  private runs!: RunStore;
  private messages: ConsumerMessages | undefined;
  private watcher: MaxDeliveriesWatcher | undefined;
  private directory: WorkerDirectory | undefined;
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
    // settle() never throws; should it ever, the message is left to redelivery.
    this.pipeline = new KeyedPipeline(config.env.MOONMIND_INTAKE_INFLIGHT, (err, key) => this.log.error({ err, key }, "an intake task threw"));
  }

  /** Pulled ahead of the pipeline; as many as it holds, so it never waits on a fetch. */
  private get pullBatch(): number {
    return this.pipeline.limit;
  }

  async start(): Promise<void> {
    const kvm = new Kvm(this.nc);
    this.runs = new RunStore(await kvm.open(BUCKETS.runs));
    this.directory = new WorkerDirectory(await kvm.open(BUCKETS.workers), this.config.env);
    await this.directory.start();
    this.watcher = new MaxDeliveriesWatcher(this.nc, await jetstreamManager(this.nc), this.runs, this.publisher, this.log);
    this.watcher.start();
    const consumer = await this.js.consumers.get(STREAMS.jobs, INTAKE_CONSUMER);
    this.messages = await consumer.consume({ max_messages: this.pullBatch, abort_on_missing_resource: true });
    this.loop = this.consume(consumer);
    this.log.info({ subject: SUBJECTS.submit, consumer: INTAKE_CONSUMER }, "intake serving");
  }

  /**
   * Until stopped: a consumer that fails or ends is consumed again. `abort_on_missing_resource`
   * makes a deleted consumer end the iterator at once; otherwise the client waits for two missed
   * heartbeats before it looks again. Each message is judged here, which names its job, then
   * queued under that id; the loop waits while the pipeline is full. A message that arrives once
   * stopping has begun is handed back at once (nak) for another replica.
   */
  private async consume(consumer: Consumer): Promise<void> {
    for (;;) {
      try {
        for await (const msg of this.messages!) {
          if (this.stopping) {
            msg.nak();
            continue;
          }
          const verdict = this.judge(msg);
          // Every verdict names a job: the submission's own id, or one made up for it (unique,
          // like the stream sequence it stands in for) when the payload gives none usable.
          const key = verdict.ok ? verdict.job.id : verdict.jobId;
          await this.pipeline.push(key, () => this.settle(msg, verdict));
        }
      } catch (err) {
        if (this.stopping) return;
        this.log.error({ err }, "intake's consumer failed; consuming again in 1 s");
      }
      if (this.stopping) return;
      await new Promise((r) => setTimeout(r, 1_000));
      if (this.stopping) return;
      try {
        this.messages = await (await this.js.consumers.get(STREAMS.jobs, INTAKE_CONSUMER).catch(() => consumer)).consume({ max_messages: this.pullBatch, abort_on_missing_resource: true });
      } catch (err) {
        this.log.warn({ err }, "intake's consumer is not back yet");
      }
    }
  }

  /**
   * Never throws. The input is judged first, by pure code that cannot throw (a surprise there is
   * a rejection too); only what follows — our own NATS I/O (server unreachable, a timeout) — can
   * fail, and only that hands the message back for another try. Not serialized by job id: the
   * consume loop does that; a caller of this one handles one message at a time.
   */
  async handle(msg: JsMsg): Promise<IntakeOutcome | undefined> {
    return this.settle(msg, this.judge(msg));
  }

  private async settle(msg: JsMsg, verdict: Rejection | Routable): Promise<IntakeOutcome | undefined> {
    try {
      if (!verdict.ok) return await this.reject(msg, verdict);
      const followUp = await this.followUpProblem(verdict.job);
      if (followUp) return await this.reject(msg, { ok: false, jobId: verdict.job.id, reason: followUp, field: "task.resume.runId", original: verdict.job });
      const outcome = await this.route(verdict);
      // A plain ack, not ackAck: waiting for the server's word would hold this job's slot one
      // more round trip and change nothing. A lost ack means a redelivery either way (an ackAck
      // that failed was nak'ed), and a redelivery finds the record: reported as a duplicate, not
      // run again. Pending acks are flushed by the connection's drain when intake stops.
      msg.ack();
      return outcome;
    } catch (err) {
      this.log.error({ err, seq: msg.seq }, "intake could not process a message; it will be redelivered");
      msg.nak(2_000);
      return undefined;
    }
  }

  /** Pure: the submission's verdict, and for an accepted job its route and first run record. */
  private judge(msg: JsMsg): Rejection | Routable {
    try {
      const parsed = parseSubmission(msg.data, this.options);
      if (!parsed.ok) return parsed;
      const job = parsed.job;
      const runtime = job.targetRuntime;
      const r = route(runtime, job.repository, this.config.shardCounts[runtime], job.affinityKey);
      return { ok: true, job, route: r, record: newRunRecord(job, r, new Date().toISOString()) };
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.log.error({ errName: e.name, seq: msg.seq }, "judging a submission threw; rejecting it");
      return {
        ok: false,
        jobId: newJobId(),
        reason: `intake could not judge this payload (${e.name}); an operator can inspect the copy on DEAD`,
        original: redactText(new TextDecoder().decode(msg.data.subarray(0, 4_352))).slice(0, 4_096),
        truncated: true,
      };
    }
  }

  /**
   * DEAD copy, `rejected` event, term. Under the id of a job that exists the event goes on a
   * subject of its own, so the job's history (what `moonmind watch` follows) is never touched.
   */
  private async reject(msg: JsMsg, parsed: Rejection): Promise<IntakeOutcome> {
    const field = parsed.field === undefined ? {} : { field: parsed.field };
    // The DEAD copy first: whoever sees the event can rely on it. (DEAD and STATUS are two
    // streams, so the copy is awaited, not merely sent first; the look-up rides along.)
    const [, existing] = await Promise.all([
      this.publisher.dead({
        jobId: parsed.jobId,
        stage: "intake",
        reason: parsed.reason,
        ...field,
        subject: msg.subject,
        original: parsed.original,
        ...(parsed.truncated ? { truncated: true } : {}),
      }),
      this.runExists(parsed.jobId),
    ]);
    if (existing) {
      const event = { type: "rejected", at: new Date().toISOString(), jobId: parsed.jobId, reason: parsed.reason, ...field };
      await this.js.publish(submissionEventSubject(parsed.jobId, "rejected"), JSON.stringify(event));
    } else {
      await this.publisher.job(parsed.jobId, { type: "rejected", reason: parsed.reason, ...field });
    }
    msg.term();
    this.log.info({ jobId: parsed.jobId, reason: parsed.reason, existingJob: existing }, "job rejected");
    return { kind: "rejected", jobId: parsed.jobId, reason: parsed.reason };
  }

  /**
   * Why a follow-up (`task.resume`) cannot continue the run it names, or undefined: that run must
   * exist, have succeeded (its result is where the follow-up starts) and be of the same repository.
   * A duplicate of a routed follow-up is judged again, harmlessly: the run it names stays succeeded.
   */
  private async followUpProblem(job: JobRequest): Promise<string | undefined> {
    const runId = job.task.resume?.runId;
    if (runId === undefined) return undefined;
    if (runId === job.id) return "task.resume.runId names this job itself; name the earlier run to continue";
    const earlier = await this.runs.lookup(runId);
    if (earlier === null) return `task.resume.runId: the record of run ${runId} does not parse; it cannot be continued`;
    if (!earlier) return `task.resume.runId: there is no run ${runId} (moonmind runs lists them)`;
    const { state, repository } = earlier.record;
    if (state !== "succeeded") return `task.resume.runId: run ${runId} is ${state}; only a succeeded run can be continued (its result is where a follow-up starts)`;
    if (normalizeRepository(repository) !== normalizeRepository(job.repository)) {
      return `task.resume.runId: run ${runId} worked on ${repository}, not ${job.repository}; a follow-up continues on the same repository`;
    }
    return undefined;
  }

  /** Whether a run record exists under this id; one that no longer parses still exists. */
  private async runExists(jobId: string): Promise<boolean> {
    return (await this.runs.lookup(jobId)) !== undefined;
  }

  private async route({ job, route: r, record }: Routable): Promise<IntakeOutcome> {
    const runtime = job.targetRuntime;
    // A job no ready worker can take says so at once, with the remedy, on its record and its
    // events; the record is created with the reason, so saying it costs no second write. It goes
    // on by itself when a worker is ready: the claim clears the field.
    const waiting = this.whyItWaits(job, r.shard);
    const created = await this.runs.create(waiting ? { ...record, waiting: { reason: waiting, since: record.createdAt } } : record);
    if (!created) {
      const again = await this.routeAgain(job, r);
      if (again) return again;
    }
    const meta = jobMeta(job);
    // One flight, no ack awaited in between: accepted, the shard message, routed and waiting are
    // written to this one connection in this order, synchronously (js.publish sends before its
    // first await and, without `retries`, never sends again later); a server handles one
    // connection's messages in order and a stream stores them as they arrive, so STATUS holds
    // accepted < routed < waiting. The shard message is on JOBS, another stream: nothing orders
    // it against STATUS, and nothing needs to: `routed` may be stored a moment before the shard
    // message is. If any of them fails the message is nak'ed, and its redelivery finds the record
    // and routes the stored request again (Nats-Msg-Id dedupes it); an event lost that way is not
    // said again, as before this was pipelined.
    const flight = [
      this.publisher.job(job.id, { type: "accepted", runtime, repository: job.repository }, meta),
      this.js.publish(r.subject, JSON.stringify(job), { msgID: job.id }),
      this.publisher.job(job.id, { type: "routed", runtime, shard: r.shard, subject: r.subject, consumer: r.consumer, key: r.key }, meta),
      ...(waiting ? [this.publisher.job(job.id, { type: "waiting", subject: r.subject, reason: waiting }, meta)] : []),
    ] as const;
    const [, ack] = await Promise.all(flight);
    if (ack.duplicate) {
      // The run record is new, so this id was never routed: the submission itself carried
      // Nats-Msg-Id = job id, which shares JOBS's dedupe window. Route it under a distinct id.
      await this.js.publish(r.subject, JSON.stringify(job), { msgID: `${job.id}.routed` });
      this.log.warn({ jobId: job.id }, "submission used the job id as Nats-Msg-Id; use another value (e.g. submit-<id>)");
    }
    this.log.info({ jobId: job.id, subject: r.subject, ...(waiting ? { waiting } : {}) }, "job routed");
    return { kind: "routed", jobId: job.id, subject: r.subject, duplicate: false };
  }

  /**
   * Same id again: a duplicate submission or our own redelivery. Re-publish what was stored;
   * JetStream drops it if the first publish landed (Nats-Msg-Id), a worker skips it if it ran.
   * Undefined when the record vanished between the create and this read: routed as new.
   */
  private async routeAgain(job: JobRequest, r: Route): Promise<IntakeOutcome | undefined> {
    const existing = await this.runs.lookup(job.id);
    if (existing === null) {
      this.log.warn({ jobId: job.id }, "duplicate job id whose run record does not parse; not routed again");
      return { kind: "routed", jobId: job.id, subject: r.subject, duplicate: true };
    }
    if (!existing) return undefined;
    // Said on a subject of its own: the job's history stays the job's.
    const sameRequest = canonicalJson(existing.record.request) === canonicalJson(job);
    const event = { type: "duplicate", at: new Date().toISOString(), jobId: job.id, state: existing.record.state, sameRequest };
    const [ack] = await Promise.all([
      this.js.publish(existing.record.subject, JSON.stringify(existing.record.request), { msgID: job.id }),
      this.js.publish(submissionEventSubject(job.id, "duplicate"), JSON.stringify(event)),
    ]);
    this.log.info({ jobId: job.id, state: existing.record.state, sameRequest, deduped: ack.duplicate }, "duplicate job id; not run again");
    return { kind: "routed", jobId: job.id, subject: existing.record.subject, duplicate: true };
  }

  /** Pure over the directory (kept current by a watch): why no ready worker serves the shard, if none does. */
  private whyItWaits(job: JobRequest, shard: number): string | undefined {
    const readiness = this.directory?.readiness(job.targetRuntime, shard);
    return readiness && !readiness.ready ? readiness.reason : undefined;
  }

  stop(): Promise<void> {
    const step = async (what: string, run: () => unknown): Promise<void> => {
      try {
        await run();
      } catch (err) {
        this.log.warn({ err }, `${what} failed`);
      }
    };
    this.stopping ??= (async () => {
      // Stop pulling; what is in the pipeline finishes (acked, or nak'ed on a failure), and what
      // was pulled but not yet taken in is nak'ed by the loop: nothing is left half done.
      await step("closing the intake consumer", () => this.messages?.close());
      await step("ending the consume loop", () => this.loop);
      await step("settling in-flight messages", () => this.pipeline.idle());
      await step("stopping the max-deliveries watcher", () => this.watcher?.stop());
      this.directory?.stop();
      await closeConnection(this.nc);
      this.log.info("intake stopped");
    })().finally(() => this.markStopped());
    return this.stopping;
  }

  private markStopped!: () => void;
  private readonly whenStopped = new Promise<void>((resolve) => (this.markStopped = resolve));

  /** Settles once intake has stopped, whoever stopped it. */
  stopped(): Promise<void> {
    return this.whenStopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

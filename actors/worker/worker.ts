/**
 * The worker: binds the durable pull consumers of its runtimes' shards, runs up to
 * `concurrency` jobs at a time through the job machine, heartbeats into KV `workers`, and
 * stops in order: stop pulling → let running jobs finish (or hand them back) → flush → drain.
 */
import { jetstream, type Consumer, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { createActor, toPromise, type Actor } from "xstate";
import type { Settlement } from "../../machines/job.machine.js";
import { retryDelayMs } from "../../src/backoff.js";
import type { Config, ShardBinding } from "../../src/config.js";
import { StatusPublisher } from "../../src/events.js";
import type { Logger } from "../../src/logger.js";
import { RunStore } from "../../src/runs/store.js";
import { createAdapter } from "../../src/runtimes/index.js";
import type { RuntimeAdapter } from "../../src/runtimes/types.js";
import { WorkerRecordSchema, type WorkerRecord } from "../../src/schemas/events.js";
import { JobRequestSchema } from "../../src/schemas/job.js";
import type { PreflightResult } from "../../src/schemas/run.js";
import type { Runtime } from "../../src/schemas/runtime.js";
import { BUCKETS, OBJECT_STORES, STREAMS, shardConsumer } from "../../src/subjects.js";
import { WorkspaceManager } from "../../src/workspace/git.js";
import { VERSION } from "../../src/version.js";
import { provideJobMachine, type JobDeps } from "./job-effects.js";
import { Slots } from "./slots.js";

/** The documented lifecycle of a worker process. */
export const WORKER_STATES = ["booting", "serving", "draining", "stopped"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const PREFLIGHT_TTL_MS = 60_000;

interface Running {
  actor: Actor<ReturnType<typeof provideJobMachine>>;
  done: Promise<void>;
}

export class Worker implements AsyncDisposable {
  state: WorkerState = "booting";
  private readonly js: JetStreamClient;
  private readonly publisher: StatusPublisher;
  private readonly slots: Slots;
  private readonly running = new Map<string, Running>();
  private readonly loops: Promise<void>[] = [];
  private readonly adapters = new Map<Runtime, RuntimeAdapter>();
  private readonly preflights = new Map<Runtime, { result: PreflightResult; at: number }>();
  private readonly stopController = new AbortController();
  private runs!: RunStore;
  private workers!: KV;
  private deps!: Omit<JobDeps, "adapter">;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.js = jetstream(nc);
    this.publisher = new StatusPublisher(this.js);
    this.slots = new Slots(config.env.MOONMIND_WORKER_CONCURRENCY);
  }

  get id(): string {
    return this.config.workerId;
  }

  async start(): Promise<void> {
    const env = this.config.env;
    const kvm = new Kvm(this.nc);
    this.runs = new RunStore(await kvm.open(BUCKETS.runs));
    this.workers = await kvm.open(BUCKETS.workers);
    const artifacts = await new Objm(this.nc).open(OBJECT_STORES.artifacts);
    for (const runtime of this.config.workerRuntimes) this.adapters.set(runtime, createAdapter(runtime, this.config));

    this.deps = {
      workerId: this.id,
      nc: this.nc,
      runs: this.runs,
      artifacts,
      publisher: this.publisher,
      workspaces: new WorkspaceManager({
        workdir: this.config.workdir,
        gitBaseUrl: env.MOONMIND_GIT_BASE_URL,
        allowLocalRepos: env.MOONMIND_ALLOW_LOCAL_REPOS,
        keep: env.MOONMIND_KEEP_WORKSPACES,
      }),
      preflight: (adapter) => this.preflight(adapter),
      onLoginExpired: (adapter, evidence) => {
        this.preflights.delete(adapter.runtime);
        this.log.warn({ runtime: adapter.runtime, evidence: evidence.slice(0, 300) }, "a job's output shows the login expired");
      },
      isWorkerAlive: (id) => this.isWorkerAlive(id),
      log: this.log,
      settings: {
        jobTimeoutMs: env.MOONMIND_JOB_TIMEOUT_MS,
        killGraceMs: env.MOONMIND_KILL_GRACE_MS,
        workerTtlMs: env.MOONMIND_WORKER_TTL_MS,
        logBatchMs: env.MOONMIND_LOG_BATCH_MS,
        logBatchLines: env.MOONMIND_LOG_BATCH_LINES,
      },
    };

    for (const adapter of this.adapters.values()) {
      const result = await this.preflight(adapter);
      this.log.info({ runtime: adapter.runtime, status: result.status, message: result.message }, "preflight");
    }

    this.state = "serving";
    await this.beat();
    await this.publisher.worker(this.id, {
      type: "online",
      runtimes: this.config.workerRuntimes,
      shards: this.bindingNames(),
      concurrency: env.MOONMIND_WORKER_CONCURRENCY,
      version: VERSION,
    });
    this.heartbeat = setInterval(() => {
      this.beat().catch((err: unknown) => this.log.warn({ err }, "heartbeat failed"));
    }, env.MOONMIND_HEARTBEAT_MS);

    for (const binding of this.config.workerShards) {
      const consumer = await this.js.consumers.get(STREAMS.jobs, shardConsumer(binding.runtime, binding.shard));
      this.loops.push(this.pullLoop(binding, consumer));
    }
    this.log.info({ shards: this.bindingNames(), concurrency: env.MOONMIND_WORKER_CONCURRENCY }, "worker serving");
  }

  /** Jobs currently running on this worker. */
  inFlight(): string[] {
    return [...this.running.keys()];
  }

  private bindingNames(): string[] {
    return this.config.workerShards.map((b) => shardConsumer(b.runtime, b.shard));
  }

  /**
   * One loop per bound consumer. A slot is taken before pulling, so a busy worker never holds
   * a message it cannot start: another worker gets it instead.
   */
  private async pullLoop(binding: ShardBinding, consumer: Consumer): Promise<void> {
    const signal = this.stopController.signal;
    const expires = this.config.env.MOONMIND_PULL_EXPIRES_MS;
    while (!signal.aborted) {
      if (!(await this.slots.acquire(signal))) break;
      let msg: JsMsg | null = null;
      try {
        msg = await consumer.next({ expires });
      } catch (err) {
        this.slots.release();
        if (signal.aborted) break;
        this.log.warn({ err, consumer: shardConsumer(binding.runtime, binding.shard) }, "pull failed; retrying");
        await sleep(1_000, signal);
        continue;
      }
      if (!msg) {
        this.slots.release();
        continue;
      }
      if (signal.aborted) {
        msg.nak();
        this.slots.release();
        break;
      }
      this.runJob(binding, msg).finally(() => this.slots.release());
    }
  }

  private async runJob(binding: ShardBinding, msg: JsMsg): Promise<void> {
    const parsed = JobRequestSchema.safeParse(safeJson(msg.data));
    if (!parsed.success) {
      // Intake validates everything it routes; anything else on a shard subject is not ours to run.
      this.log.error({ subject: msg.subject, seq: msg.seq }, "unparseable job on a shard subject; terminating it");
      msg.term();
      return;
    }
    const job = parsed.data;
    const adapter = this.adapters.get(binding.runtime)!;
    const env = this.config.env;
    const machine = provideJobMachine({ ...this.deps, adapter }, msg, job);
    const actor = createActor(machine, {
      input: {
        job,
        keepAliveMs: Math.max(1_000, Math.floor(env.MOONMIND_ACK_WAIT_MS / 3)),
        jobTimeoutMs: env.MOONMIND_JOB_TIMEOUT_MS,
        retryDelay: (attempt) =>
          retryDelayMs(attempt, { baseMs: env.MOONMIND_RETRY_BACKOFF_MS, maxMs: env.MOONMIND_RETRY_BACKOFF_MAX_MS, jitter: 0.2 }, Math.random),
        requeueDelayMs: env.MOONMIND_WORKER_TTL_MS,
      },
    });
    const log = this.log.child({ jobId: job.id, delivery: msg.info.deliveryCount });
    const done = toPromise(actor)
      .then(async (output) => {
        await settle(msg, output.settlement);
        log.info({ settlement: output.settlement.kind }, "job settled");
      })
      .catch((err: unknown) => {
        log.error({ err }, "job machine failed; handing the message back");
        msg.nak(5_000);
      })
      .finally(() => this.running.delete(job.id));
    this.running.set(job.id, { actor, done });
    actor.start();
    await done;
  }

  private async preflight(adapter: RuntimeAdapter): Promise<PreflightResult> {
    const cached = this.preflights.get(adapter.runtime);
    if (cached && Date.now() - cached.at < PREFLIGHT_TTL_MS) return cached.result;
    const result = await adapter.preflight();
    this.preflights.set(adapter.runtime, { result, at: Date.now() });
    await this.publisher.worker(this.id, {
      type: "preflight",
      runtime: adapter.runtime,
      status: result.status,
      message: result.message,
      checkedAt: result.checkedAt,
      ...(result.volume ? { volume: result.volume } : {}),
    });
    return result;
  }

  private async isWorkerAlive(workerId: string): Promise<boolean> {
    const entry = await this.workers.get(workerId);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return false;
    const record = WorkerRecordSchema.safeParse(safeJson(entry.value));
    if (!record.success || record.data.state === "stopped") return false;
    return Date.now() - Date.parse(record.data.heartbeatAt) < this.config.env.MOONMIND_WORKER_TTL_MS;
  }

  private async beat(): Promise<void> {
    const record: WorkerRecord = {
      workerId: this.id,
      runtimes: this.config.workerRuntimes,
      shards: this.bindingNames(),
      concurrency: this.config.env.MOONMIND_WORKER_CONCURRENCY,
      inFlight: this.inFlight(),
      state: this.state,
      version: VERSION,
      startedAt: this.startedAt,
      heartbeatAt: new Date().toISOString(),
    };
    await this.workers.put(this.id, JSON.stringify(record));
    if (this.state === "serving") {
      await this.publisher.worker(this.id, { type: "heartbeat", inFlight: record.inFlight });
    }
  }

  /** Ordered and idempotent: a second call awaits the first. */
  stop(reason = "stopped"): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async doStop(reason: string): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err, step: name }, "stop step failed; continuing");
      }
    };
    this.state = "draining";
    await step("announce draining", () => this.publisher.worker(this.id, { type: "draining", inFlight: this.inFlight() }));
    await step("stop pulling", async () => {
      this.stopController.abort();
      await Promise.allSettled(this.loops);
    });
    await step("settle running jobs", async () => {
      const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
      const grace = this.config.env.MOONMIND_STOP_GRACE_MS;
      if (this.running.size > 0) this.log.info({ jobs: this.inFlight(), graceMs: grace }, "waiting for running jobs");
      const finished = await Promise.race([all.then(() => true), sleep(grace).then(() => false)]);
      if (!finished) {
        for (const [jobId, r] of this.running) {
          this.log.warn({ jobId }, "handing a running job back");
          r.actor.send({ type: "RELEASE", reason: `worker ${this.id} is stopping` });
        }
        await all;
      }
    });
    clearInterval(this.heartbeat);
    this.state = "stopped";
    await step("deregister", () => this.workers.delete(this.id));
    await step("announce offline", () => this.publisher.worker(this.id, { type: "offline", reason }));
    await step("drain connection", () => this.nc.drain());
    this.log.info({ reason }, "worker stopped");
  }
}

async function settle(msg: JsMsg, s: Settlement): Promise<void> {
  switch (s.kind) {
    case "ack":
      await msg.ackAck();
      return;
    case "nak":
      msg.nak(s.delayMs);
      return;
    case "term":
      msg.term();
      return;
    case "none":
      return;
  }
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

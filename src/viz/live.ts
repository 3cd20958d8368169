/**
 * The live view's model: what every worker, login and recent job is doing, kept current from
 * NATS alone — KV `runs` and `workers` (the records, as ops reads them) and the machines'
 * `state` events on STATUS, replayed from history at start so a reload loses nothing. Every
 * change is handed to the listeners as the whole entity that changed (the page replaces it).
 */
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { parseJson } from "../json.js";
import type { Logger } from "../logger.js";
import { followStatus } from "../cli/follow.js";
import { WorkerRecordSchema, type JobEvent, type WorkerEvent, type WorkerRecord } from "../schemas/events.js";
import { RunRecordSchema, type RunRecord } from "../schemas/run.js";
import { BUCKETS, jobEventSubject, workerEventSubject } from "../subjects.js";

export interface MachineView {
  states: string[];
  event: string;
  at: string;
}

export interface JobView {
  jobId: string;
  /** The run record (KV runs) without the request: what the jobs panel shows. */
  record?: Omit<RunRecord, "request">;
  machine?: MachineView & { workerId: string; attempt: number };
}

export interface WorkerView {
  workerId: string;
  /** The worker's KV entry; absent once it expired or the worker deregistered. */
  record?: WorkerRecord;
  machine?: MachineView;
  /** Each login's auth machine, by `<runtime>:<volume>`. */
  auth: Record<string, MachineView>;
}

export type LiveChange = { kind: "job"; job: JobView } | { kind: "worker"; worker: WorkerView };

export interface LiveSnapshot {
  at: string;
  workers: WorkerView[];
  jobs: JobView[];
}

export interface LiveOptions {
  /** How far back STATUS is replayed for machine states (ms). */
  historyMs: number;
  /** Jobs kept, newest first by their record's updatedAt. */
  maxJobs: number;
  log: Logger;
}

export class LiveModel {
  private readonly jobs = new Map<string, JobView>();
  private readonly workers = new Map<string, WorkerView>();
  private readonly listeners = new Set<(c: LiveChange) => void>();
  private readonly controller = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private stops: Array<() => void> = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: LiveOptions,
  ) {}

  /** Resolves once the records and the stored history have been read. */
  async start(): Promise<void> {
    const kvm = new Kvm(this.nc);
    const [runs, workers] = await Promise.all([kvm.open(BUCKETS.runs), kvm.open(BUCKETS.workers)]);
    await Promise.all([this.watch(runs, (e) => this.onRun(e)), this.watch(workers, (e) => this.onWorkerRecord(e))]);
    // Serving starts once the stored transitions are in: a reload right away shows them all.
    await this.followMachines();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    for (const stop of this.stops) stop();
    await Promise.allSettled(this.loops);
  }

  onChange(listener: (c: LiveChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): LiveSnapshot {
    const jobs = [...this.jobs.values()].sort((a, b) => (b.record?.updatedAt ?? "").localeCompare(a.record?.updatedAt ?? ""));
    return { at: new Date().toISOString(), workers: [...this.workers.values()].filter((w) => w.record), jobs };
  }

  /** Reads a bucket's current values, then follows it; resolves once the current values are in. */
  private async watch(kv: KV, apply: (e: KvWatchEntry) => void): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const iter = await kv.watch();
    this.stops.push(() => iter.stop());
    // `delta` counts the stored entries still to come: 0 on the last current value.
    if ((await kv.status()).values === 0) initialized();
    this.loops.push(
      (async () => {
        for await (const e of iter) {
          try {
            apply(e);
          } catch (err) {
            this.opts.log.warn({ err, key: e.key }, "live view: entry not applied");
          }
          if (e.delta === 0) initialized();
        }
      })().finally(() => initialized()),
    );
    await ready;
  }

  private onRun(e: KvWatchEntry): void {
    if (e.operation !== "PUT") {
      if (this.jobs.delete(e.key)) this.emit({ kind: "job", job: { jobId: e.key } });
      return;
    }
    const parsed = RunRecordSchema.safeParse(parseJson(e.value));
    if (!parsed.success) return;
    const { request: _request, ...record } = parsed.data;
    const job = this.job(e.key);
    job.record = record;
    this.trimJobs();
    this.emit({ kind: "job", job });
  }

  private onWorkerRecord(e: KvWatchEntry): void {
    const worker = this.worker(e.key);
    if (e.operation !== "PUT") {
      delete worker.record;
    } else {
      const parsed = WorkerRecordSchema.safeParse(parseJson(e.value));
      if (!parsed.success) return;
      worker.record = parsed.data;
    }
    this.emit({ kind: "worker", worker });
  }

  /** Machine transitions: replayed from `historyMs` ago, then live, on one ordered consumer. */
  private async followMachines(): Promise<void> {
    const since = new Date(Date.now() - this.opts.historyMs);
    let replayed!: () => void;
    const done = new Promise<void>((resolve) => (replayed = resolve));
    const iter = followStatus(this.nc, {
      filter: [jobEventSubject("*", "state"), workerEventSubject("*", "state")],
      since,
      signal: this.controller.signal,
      onReplayed: () => replayed(),
    });
    this.loops.push(
      (async () => {
        for await (const item of iter) {
          if (item.kind !== "submission") this.onState(item.event);
        }
      })()
        .catch((err: unknown) => {
          if (!this.controller.signal.aborted) this.opts.log.error({ err }, "live view: status follow ended");
        })
        .finally(() => replayed()),
    );
    await done;
  }

  private onState(e: JobEvent | WorkerEvent): void {
    if (e.type !== "state") return;
    const view = { states: e.states, event: e.event, at: e.at };
    if ("jobId" in e) {
      const job = this.job(e.jobId);
      // A later attempt's machine replaces an earlier one; a late frame of an old attempt does not.
      if (job.machine && job.machine.attempt > e.attempt) return;
      job.machine = { ...view, workerId: e.workerId, attempt: e.attempt };
      this.emit({ kind: "job", job });
      return;
    }
    const worker = this.worker(e.workerId);
    if (e.machine === "auth" && e.login) worker.auth[e.login] = view;
    else worker.machine = view;
    this.emit({ kind: "worker", worker });
  }

  private job(jobId: string): JobView {
    let job = this.jobs.get(jobId);
    if (!job) this.jobs.set(jobId, (job = { jobId }));
    return job;
  }

  private worker(workerId: string): WorkerView {
    let worker = this.workers.get(workerId);
    if (!worker) this.workers.set(workerId, (worker = { workerId, auth: {} }));
    return worker;
  }

  /** Keeps the newest `maxJobs` runs (a fleet's KV holds many more than a page shows). */
  private trimJobs(): void {
    if (this.jobs.size <= this.opts.maxJobs * 1.25) return;
    const oldest = [...this.jobs.values()]
      .sort((a, b) => (a.record?.updatedAt ?? "").localeCompare(b.record?.updatedAt ?? ""))
      .slice(0, this.jobs.size - this.opts.maxJobs);
    for (const j of oldest) this.jobs.delete(j.jobId);
  }

  private emit(change: LiveChange): void {
    for (const l of this.listeners) l(change);
  }
}

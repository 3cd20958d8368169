/**
 * Why a queued job waits, kept true for as long as it waits. Intake says it once, at routing;
 * but a job also comes back to the queue (a retry, a drain, an expired login handing it back),
 * and the reason changes while it waits (a worker starts but its login is paused, a worker goes
 * away). Every ops replica follows the queued runs (KV `runs`) and the workers (KV `workers`)
 * and, once a second, for each queued run no ready worker serves, records the current reason on
 * the run and publishes `waiting` when it differs from the one recorded. The write is
 * compare-and-set and only a changed reason is written, so replicas do not repeat each other.
 * A ready worker's claim clears the field.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import type { Env } from "../config.js";
import type { StatusPublisher } from "../events.js";
import type { Logger } from "../logger.js";
import { parseJson } from "../json.js";
import { jobMeta } from "../schemas/job.js";
import { RunRecordSchema, type RunRecord } from "../schemas/run.js";
import type { Runtime } from "../schemas/runtime.js";
import type { RunStore } from "../runs/store.js";
import { WorkerDirectory } from "../workers/directory.js";

export interface WaitingMonitorDeps {
  runsKv: KV;
  runs: RunStore;
  workersKv: KV;
  publisher: StatusPublisher;
  env: Env;
  log: Logger;
  now?: () => Date;
  periodMs?: number;
}

export class WaitingMonitor {
  private readonly queued = new Map<string, RunRecord>();
  private readonly directory: WorkerDirectory;
  private stopWatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly now: () => Date;

  constructor(private readonly deps: WaitingMonitorDeps) {
    this.now = deps.now ?? (() => new Date());
    this.directory = new WorkerDirectory(deps.workersKv, deps.env, () => this.now().getTime());
  }

  async start(): Promise<void> {
    await this.directory.start();
    const watch = await this.deps.runsKv.watch();
    this.stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) this.apply(entry);
    })().catch((err: unknown) => this.deps.log.warn({ err }, "the watch of queued runs ended"));
    this.timer = setInterval(() => {
      this.checking ??= this.checkAll().finally(() => (this.checking = undefined));
    }, this.deps.periodMs ?? 1_000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopWatch?.();
    this.directory.stop();
    await this.checking;
  }

  /** Queued runs, as the watch brings them; whatever else a run becomes takes it out. */
  private apply(entry: KvEntry): void {
    if (entry.operation !== "PUT" || entry.length === 0) {
      this.queued.delete(entry.key);
      return;
    }
    const parsed = RunRecordSchema.safeParse(parseJson(entry.value));
    if (parsed.success && parsed.data.state === "queued") this.queued.set(entry.key, parsed.data);
    else this.queued.delete(entry.key);
  }

  /** How many runs are queued on the shard right now. */
  queuedOn(runtime: Runtime, shard: number): number {
    let n = 0;
    for (const r of this.queued.values()) if (r.runtime === runtime && r.shard === shard) n++;
    return n;
  }

  private async checkAll(): Promise<void> {
    for (const run of [...this.queued.values()]) {
      const readiness = this.directory.readiness(run.runtime, run.shard);
      if (readiness.ready || !readiness.reason || readiness.reason === run.waiting?.reason) continue;
      await this.record(run.jobId, readiness.reason).catch((err: unknown) =>
        this.deps.log.warn({ err, jobId: run.jobId }, "could not record why a job waits"),
      );
    }
  }

  private async record(jobId: string, reason: string): Promise<void> {
    const since = this.now().toISOString();
    let changed = false;
    const stored = await this.deps.runs.update(jobId, (r) => {
      changed = r.state === "queued" && r.waiting?.reason !== reason;
      return changed ? { ...r, waiting: { reason, since }, updatedAt: since } : undefined;
    });
    if (!stored || !changed) return;
    this.queued.set(jobId, stored.record);
    await this.deps.publisher.job(jobId, { type: "waiting", subject: stored.record.subject, reason }, jobMeta(stored.record.request));
  }
}

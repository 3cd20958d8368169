/**
 * The live workers, as KV `workers` says (each entry refreshed by its worker's heartbeat), kept
 * current by a watch so a question costs no round trip: who serves a shard, and is any ready?
 * Intake asks it for every job it routes; ops asks it for shard health.
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { parseJson } from "../json.js";
import { WorkerRecordSchema, type WorkerRecord } from "../schemas/events.js";
import type { Runtime } from "../schemas/runtime.js";
import type { Env } from "../config.js";
import { shardConsumer, shardSubject } from "../subjects.js";
import { isLive, loginFor, servesNow, volumeNameFor, waitingRemedy, type Clock } from "./readiness.js";

export interface ShardReadiness {
  ready: boolean;
  /** When not ready: why, with the remedy. */
  reason?: string;
  workers: WorkerRecord[];
}

export class WorkerDirectory {
  private readonly workers = new Map<string, WorkerRecord>();
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly kv: KV,
    private readonly env: Env,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    const watch = await this.kv.watch();
    this.stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) this.apply(entry);
    })().catch(() => undefined);
  }

  stop(): void {
    this.stopWatch?.();
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT" || entry.length === 0) {
      this.workers.delete(entry.key);
      return;
    }
    const record = WorkerRecordSchema.safeParse(parseJson(entry.value));
    if (record.success) this.workers.set(entry.key, record.data);
  }

  /** Workers whose heartbeat is younger than the TTL and that have not stopped. */
  live(): WorkerRecord[] {
    const clock = this.clock();
    return [...this.workers.values()].filter((w) => isLive(w, clock));
  }

  /** Whether some live worker serves the shard now (src/workers/readiness.ts); if none does, why. */
  readiness(runtime: Runtime, shard: number): ShardReadiness {
    const clock = this.clock();
    const volumeName = volumeNameFor(this.env, runtime, shard);
    const bound = this.live().filter((w) => w.shards.includes(shardConsumer(runtime, shard)));
    if (bound.some((w) => servesNow(w, runtime, shard, volumeName, clock))) return { ready: true, workers: bound };
    const logins = bound.map((w) => ({ workerId: w.workerId, state: w.state, ...loginFor(w, runtime, volumeName) }));
    return { ready: false, workers: bound, reason: waitingRemedy(runtime, shardSubject(runtime, shard), logins) };
  }

  private clock(): Clock {
    return { now: this.now(), ttlMs: this.env.MOONMIND_WORKER_TTL_MS };
  }
}

/**
 * The live workers, as KV `workers` says (each entry refreshed by its worker's heartbeat), kept
 * current by a watch so a question costs no round trip: who serves a shard, and is any ready?
 * Intake asks it for every job it routes; ops asks it for shard health.
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { parseJson } from "../json.js";
import { WorkerRecordSchema, type WorkerRecord } from "../schemas/events.js";
import type { Runtime } from "../schemas/runtime.js";
import { shardConsumer, shardSubject } from "../subjects.js";

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
    private readonly ttlMs: number,
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
    const now = this.now();
    return [...this.workers.values()].filter((w) => w.state !== "stopped" && now - Date.parse(w.heartbeatAt) < this.ttlMs);
  }

  /** Whether some live worker bound to the shard has its runtime's login ready; if not, why. */
  readiness(runtime: Runtime, shard: number): ShardReadiness {
    const consumer = shardConsumer(runtime, shard);
    const subject = shardSubject(runtime, shard);
    const bound = this.live().filter((w) => w.shards.includes(consumer));
    if (bound.length === 0) {
      return {
        ready: false,
        workers: [],
        reason: `no worker serves ${subject}: start one with MOONMIND_WORKER_RUNTIMES=${runtime} (and MOONMIND_WORKER_SHARDS including ${shard}, or unset)`,
      };
    }
    const logins = (w: WorkerRecord) => Object.entries(w.auth).filter(([key]) => key.startsWith(`${runtime}:`));
    const ready = bound.some((w) => w.state !== "draining" && logins(w).some(([, a]) => a.state === "ready"));
    if (ready) return { ready: true, workers: bound };
    const why = bound.flatMap(logins).map(([, a]) => a.message).find((m) => m.length > 0);
    const draining = bound.every((w) => w.state === "draining");
    return {
      ready: false,
      workers: bound,
      reason: `no worker serving ${subject} is ready — ${draining ? "every one is draining" : (why ?? `the ${runtime} login is not ready`)}`,
    };
  }
}

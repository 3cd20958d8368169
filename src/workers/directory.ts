/**
 * The live workers, as KV `workers` says (each entry refreshed by its worker's heartbeat), kept
 * current by a watch so a question costs no round trip: who serves a shard, and is any ready?
 * Intake asks it for every job it routes; ops asks it for shard health.
 */
import type { KV, KvEntry } from "@nats-io/kv";
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
  private readonly revisions = new Map<string, number>();
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly kv: KV,
    private readonly env: Env,
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves once every record stored at start is known, so a first answer is not "nobody". */
  async start(): Promise<void> {
    const watch = await this.kv.watch();
    this.stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) this.apply(entry);
    })().catch(() => undefined);
    // The watch replays stored records too, but gives no sign when it has; read them once here.
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key);
      if (entry) this.apply(entry);
    }
  }

  stop(): void {
    this.stopWatch?.();
  }

  private apply(entry: KvEntry): void {
    const seen = this.revisions.get(entry.key) ?? 0;
    if (entry.revision < seen) return; // the start-up read and the watch may both bring one entry
    this.revisions.set(entry.key, entry.revision);
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

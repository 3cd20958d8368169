/** Reading KV `workers` and KV `runs` whole: fine at the scale one fleet has (hundreds, not millions). */
import type { KV } from "@nats-io/kv";
import { parseJson } from "../json.js";
import { WorkerRecordSchema, type WorkerRecord } from "../schemas/events.js";
import { RunRecordSchema, type RunRecord } from "../schemas/run.js";
import type { Runtime } from "../schemas/runtime.js";
import * as readiness from "../workers/readiness.js";
import type { OpsContext } from "./context.js";

async function readAll<T>(kv: KV, parse: (value: unknown) => T | undefined): Promise<T[]> {
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  const out: T[] = [];
  // A few at a time: one request each, and nobody else should wait behind us.
  for (let i = 0; i < keys.length; i += 32) {
    const entries = await Promise.all(keys.slice(i, i + 32).map((k) => kv.get(k)));
    for (const entry of entries) {
      if (!entry || entry.operation !== "PUT" || entry.length === 0) continue;
      const value = parse(parseJson(entry.value));
      if (value !== undefined) out.push(value);
    }
  }
  return out;
}

/** Every worker record that parses (a stopped worker deletes its own). */
export function readWorkers(ctx: OpsContext): Promise<WorkerRecord[]> {
  return readAll(ctx.workersKv, (v) => {
    const r = WorkerRecordSchema.safeParse(v);
    return r.success ? r.data : undefined;
  });
}

/** Every run record that parses. */
export function readRuns(ctx: OpsContext): Promise<RunRecord[]> {
  return readAll(ctx.runsKv, (v) => {
    const r = RunRecordSchema.safeParse(v);
    return r.success ? r.data : undefined;
  });
}

/** Whether the worker's last heartbeat is recent enough for it to count as there. */
/** The shared rule (src/workers/readiness.ts), on the ops context's clock and config. */
const clock = (ctx: OpsContext) => ({ now: ctx.now().getTime(), ttlMs: ctx.config.env.MOONMIND_WORKER_TTL_MS });

export function isLive(ctx: OpsContext, w: WorkerRecord): boolean {
  return readiness.isLive(w, clock(ctx));
}

export function volumeNameFor(ctx: OpsContext, runtime: Runtime, shard: number): string {
  return readiness.volumeNameFor(ctx.config.env, runtime, shard);
}

export const loginFor = readiness.loginFor;

export function servesNow(ctx: OpsContext, w: WorkerRecord, runtime: Runtime, shard: number, volumeName: string): boolean {
  return readiness.servesNow(w, runtime, shard, volumeName, clock(ctx));
}

/** Reading KV `workers` and KV `runs` whole: fine at the scale one fleet has (hundreds, not millions). */
import type { KV } from "@nats-io/kv";
import { parseJson } from "../json.js";
import { volumeForShard } from "../runtimes/cli-adapter.js";
import { WorkerRecordSchema, type WorkerRecord } from "../schemas/events.js";
import { RunRecordSchema, type RunRecord } from "../schemas/run.js";
import type { Runtime } from "../schemas/runtime.js";
import { shardConsumer } from "../subjects.js";
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
export function isLive(ctx: OpsContext, w: WorkerRecord): boolean {
  if (w.state === "stopped" || w.state === "failed") return false;
  return ctx.now().getTime() - Date.parse(w.heartbeatAt) < ctx.config.env.MOONMIND_WORKER_TTL_MS;
}

/** The login volume serving a shard, as workers name it (`{shard}` expanded). */
export function volumeNameFor(ctx: OpsContext, runtime: Runtime, shard: number): string {
  const env = ctx.config.env;
  const [name, path] =
    runtime === "codex"
      ? [env.CODEX_VOLUME_NAME, env.CODEX_VOLUME_PATH]
      : runtime === "claude"
        ? [env.CLAUDE_VOLUME_NAME, env.CLAUDE_VOLUME_PATH]
        : [env.GEMINI_VOLUME_NAME, env.GEMINI_HOME];
  return volumeForShard(name, path, shard).name;
}

export interface ShardLogin {
  login?: string;
  auth?: WorkerRecord["auth"][string];
}

/** The login on worker `w` that serves (runtime, shard): `<runtime>:<volume>`, else its only login of that runtime. */
export function loginFor(w: WorkerRecord, runtime: Runtime, volumeName: string): ShardLogin {
  const exact = `${runtime}:${volumeName}`;
  if (w.auth[exact]) return { login: exact, auth: w.auth[exact] };
  const same = Object.keys(w.auth).filter((k) => k.startsWith(`${runtime}:`));
  if (same.length === 1) return { login: same[0]!, auth: w.auth[same[0]!]! };
  return {};
}

/** Whether `w` pulls (runtime, shard) now: live, serving or paused overall, and that login ready. */
export function servesNow(ctx: OpsContext, w: WorkerRecord, runtime: Runtime, shard: number, volumeName: string): boolean {
  if (!isLive(ctx, w) || !w.shards.includes(shardConsumer(runtime, shard))) return false;
  if (w.state !== "serving" && w.state !== "paused") return false;
  return loginFor(w, runtime, volumeName).auth?.state === "ready";
}

/**
 * The one rule for "does a worker serve this shard now, and if none does, why": intake's
 * `waiting` event and ops' shard flag both come from here. Pure over worker records.
 */
import type { Env } from "../config.js";
import { volumeForShard } from "../runtimes/cli-adapter.js";
import type { WorkerRecord } from "../schemas/events.js";
import type { Runtime } from "../schemas/runtime.js";
import { shardConsumer } from "../subjects.js";

export interface Clock {
  now: number;
  ttlMs: number;
}

export function isLive(w: WorkerRecord, c: Clock): boolean {
  if (w.state === "stopped" || w.state === "failed") return false;
  return c.now - Date.parse(w.heartbeatAt) < c.ttlMs;
}

/** The login volume serving a shard, as workers name it (`{shard}` expanded). */
export function volumeNameFor(env: Env, runtime: Runtime, shard: number): string {
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

/** The worker's login for this runtime and volume (or its only login of the runtime). */
export function loginFor(w: WorkerRecord, runtime: Runtime, volumeName: string): ShardLogin {
  const exact = `${runtime}:${volumeName}`;
  if (w.auth[exact]) return { login: exact, auth: w.auth[exact] };
  const same = Object.keys(w.auth).filter((k) => k.startsWith(`${runtime}:`));
  if (same.length === 1) return { login: same[0]!, auth: w.auth[same[0]!]! };
  return {};
}

/** Whether `w` pulls (runtime, shard) now: live, serving or paused overall, and that login ready. */
export function servesNow(w: WorkerRecord, runtime: Runtime, shard: number, volumeName: string, c: Clock): boolean {
  if (!isLive(w, c) || !w.shards.includes(shardConsumer(runtime, shard))) return false;
  if (w.state !== "serving" && w.state !== "paused") return false;
  return loginFor(w, runtime, volumeName).auth?.state === "ready";
}

export interface BoundLogin {
  workerId: string;
  state: string;
  login?: string | undefined;
  auth?: WorkerRecord["auth"][string] | undefined;
}

/** Why nobody takes this shard's jobs, and what fixes it. */
export function waitingRemedy(runtime: Runtime, subject: string, bound: BoundLogin[]): string {
  if (bound.length === 0) return `no worker serves ${subject}: start one with MOONMIND_WORKER_RUNTIMES=${runtime}`;
  const notReady = bound.find((w) => w.auth && w.auth.state !== "ready" && w.auth.message) ?? bound[0]!;
  const why = notReady.auth?.message
    ? notReady.auth.message
    : `worker ${notReady.workerId} is ${notReady.state}${notReady.auth ? ` (login ${notReady.login} ${notReady.auth.state})` : ""}`;
  return `no worker serving ${subject} is ready — ${why}`;
}

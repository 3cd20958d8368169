/**
 * A per-volume mutual-exclusion lock in NATS KV, shared by every process and machine that mounts
 * one login volume. Taking it is an atomic `kv.create` of the volume's key; releasing it deletes
 * that key only if it is still at the revision we created (so a holder whose lock expired never
 * frees somebody else's). The bucket's max_age expires the lock of a holder that died.
 * Anyone holding it must finish well inside LOCK_TTL_MS.
 */
import { isNotFound, isWrongLastSequence } from "../nats/errors.js";
import { BUCKETS } from "../subjects.js";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { StorageType, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import { retryDelayMs, type BackoffPolicy } from "../backoff.js";
import { MoonmindError } from "../errors.js";

// Belongs with BUCKETS in src/subjects.ts (the one place bucket names are built); kept here until
// that file can take it.
export const LOCKS_BUCKET = BUCKETS.authLocks;
/** A lock older than this is gone, whether or not its holder released it. */
export const LOCK_TTL_MS = 30_000;

const WAIT: BackoffPolicy = { baseMs: 10, maxMs: 250, jitter: 0.5 };

export type Release = () => Promise<boolean>;

export interface LockHolder {
  owner: string;
  at: string;
}

export class VolumeLockTimeoutError extends MoonmindError {
  override name = "VolumeLockTimeoutError";
  readonly code = "AUTH_LOCK_TIMEOUT";
}

/** Creates the locks bucket when it is missing, fixes its max_age when it differs; returns it. */
export async function ensureLocksBucket(
  nc: NatsConnection,
  replicas = 1,
  opts: { ttlMs?: number } = {},
): Promise<KV> {
  const ttl = opts.ttlMs ?? LOCK_TTL_MS;
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const stream = `KV_${LOCKS_BUCKET}`;
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      return await kvm.create(LOCKS_BUCKET, { history: 1, replicas, ttl, storage: StorageType.File });
    } catch (createErr) {
      // Somebody else created it between our look and our create.
      if (!/already in use/i.test((createErr as Error).message ?? "")) throw createErr;
      return kvm.open(LOCKS_BUCKET);
    }
  }
  if (info.config.max_age !== nanos(ttl)) {
    // The dedupe window may not outlast max_age.
    const duplicate_window = Math.min(info.config.duplicate_window, nanos(ttl));
    await jsm.streams.update(stream, { ...info.config, max_age: nanos(ttl), duplicate_window });
  }
  return kvm.open(LOCKS_BUCKET);
}

/** A valid KV key for a volume: the same volume id gives the same key on every machine. */
export function volumeLockKey(volumeId: string): string {
  return `volume_${createHash("sha256").update(volumeId).digest("hex")}`;
}

export class VolumeLock {
  constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, replicas = 1): Promise<VolumeLock> {
    return new VolumeLock(await ensureLocksBucket(nc, replicas));
  }

  /**
   * Waits (bounded polling with jittered backoff) until the lock of `volumeId` is ours; returns
   * its release, which resolves true when the lock was still ours to release. Throws
   * VolumeLockTimeoutError after `timeoutMs`, naming the holder.
   */
  async acquire(
    volumeId: string,
    owner: string,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<Release> {
    const key = volumeLockKey(volumeId);
    const nonce = randomBytes(8).toString("hex");
    const deadline = Date.now() + opts.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      opts.signal?.throwIfAborted();
      const revision = await this.tryCreate(key, JSON.stringify({ owner, at: new Date().toISOString(), nonce }));
      if (revision !== undefined) return once(() => this.release(key, revision));
      const left = deadline - Date.now();
      if (left <= 0) {
        const holder = await this.holder(volumeId).catch(() => undefined);
        throw new VolumeLockTimeoutError(
          `auth volume lock ${key} still held by ${holder?.owner ?? "an unknown owner"} after ${opts.timeoutMs} ms`,
          { remedy: `it expires by itself ${LOCK_TTL_MS / 1000} s after it was taken; if it keeps happening, look for a stuck worker` },
        );
      }
      await sleep(Math.min(left, retryDelayMs(attempt, WAIT, Math.random)), undefined, opts.signal ? { signal: opts.signal } : {});
    }
  }

  /** Who holds the lock of `volumeId` now, if anyone. */
  async holder(volumeId: string): Promise<LockHolder | undefined> {
    const entry = await this.kv.get(volumeLockKey(volumeId));
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    const { owner, at } = entry.json<LockHolder>();
    return { owner, at };
  }

  private async tryCreate(key: string, value: string): Promise<number | undefined> {
    try {
      return await this.kv.create(key, value);
    } catch (err) {
      if (isWrongLastSequence(err)) return undefined;
      throw err;
    }
  }

  private async release(key: string, revision: number): Promise<boolean> {
    try {
      await this.kv.delete(key, { previousSeq: revision });
      return true;
    } catch (err) {
      // Expired, and perhaps taken by someone else since: not ours to delete.
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }
}

/** A second call returns the first call's promise. */
function once(fn: () => Promise<boolean>): Release {
  let result: Promise<boolean> | undefined;
  return () => (result ??= fn());
}

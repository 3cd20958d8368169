/**
 * Deterministic shard routing: the same repository always lands on the same shard of
 * its runtime, whichever intake replica routes it.
 *
 *   shard = uint64_be(sha256(key)[0..8]) mod shards(runtime)
 *   key   = affinityKey ?? normalizeRepository(repository)
 */
import { createHash } from "node:crypto";
import type { Runtime } from "./schemas/runtime.js";
import { shardConsumer, shardSubject } from "./subjects.js";

/**
 * Lowercases and drops the scheme, credentials, host, a trailing `.git` and slashes, so
 * `https://github.com/Org/Repo.git`, `git@github.com:org/repo` and `org/repo` all give `org/repo`.
 */
export function normalizeRepository(repository: string): string {
  let s = repository.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) {
    s = s.slice(scheme[0].length);
    // file:///abs/path has no host; anything else starts with [credentials@]host[:port]
    if (!/^file:/i.test(scheme[0])) s = s.replace(/^[^/]*/, "");
  } else {
    // scp-like: [user@]host:path (a colon before the first slash)
    const scp = /^(?:[^@/]+@)?[^/:]+:(?!\/)/.exec(s);
    if (scp) s = s.slice(scp[0].length);
  }
  s = s.toLowerCase().replace(/\/+/g, "/").replace(/^\/+|\/+$/g, "");
  s = s.replace(/\.git$/, "").replace(/\/+$/, "");
  return s;
}

export function routingKey(repository: string, affinityKey?: string): string {
  return affinityKey && affinityKey.length > 0 ? affinityKey : normalizeRepository(repository);
}

export function shardFor(key: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) {
    throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
  }
  const digest = createHash("sha256").update(key, "utf8").digest();
  return Number(digest.readBigUInt64BE(0) % BigInt(shardCount));
}

export interface Route {
  runtime: Runtime;
  key: string;
  shard: number;
  subject: string;
  consumer: string;
}

export function route(
  runtime: Runtime,
  repository: string,
  shardCount: number,
  affinityKey?: string,
): Route {
  const key = routingKey(repository, affinityKey);
  const shard = shardFor(key, shardCount);
  return { runtime, key, shard, subject: shardSubject(runtime, shard), consumer: shardConsumer(runtime, shard) };
}

/**
 * The login volume as source of truth: the per-volume lock in NATS KV, compare-and-set write-back
 * (written / stale / invalid, atomic, 0600) and seeding a run's private home. A real nats-server.
 */
import { mkdir, readFile, readdir, stat, writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialStore, seedPrivateHome, sha256Hex } from "../../src/auth/credential-store.js";
import {
  LOCKS_BUCKET,
  VolumeLock,
  VolumeLockTimeoutError,
  ensureLocksBucket,
  volumeLockKey,
} from "../../src/auth/volume-lock.js";
import { connectNats } from "../../src/nats/connect.js";
import { startStack, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let nc2: NatsConnection;
let lock: VolumeLock;
let lock2: VolumeLock;
let volumes = 0;

beforeAll(async () => {
  stack = await startStack();
  nc2 = await connectNats({ servers: stack.server.url, name: "second-machine" });
  lock = await VolumeLock.open(stack.nc);
  lock2 = await VolumeLock.open(nc2);
});
afterAll(async () => {
  await nc2?.close().catch(() => undefined);
  await stack?.stop();
});

/** A Claude-style credential file and its validator: emptied tokens are not credentials. */
const creds = (access: string, refresh: string) =>
  Buffer.from(JSON.stringify({ claudeAiOauth: { accessToken: access, refreshToken: refresh, expiresAt: 1, scopes: [] } }));
const validClaude = (bytes: Uint8Array) => {
  const o = JSON.parse(Buffer.from(bytes).toString("utf8")) as { claudeAiOauth?: { accessToken?: string; refreshToken?: string } };
  return Boolean(o.claudeAiOauth?.accessToken && o.claudeAiOauth.refreshToken);
};

async function volume(initial?: Buffer, mode = 0o600): Promise<string> {
  const dir = join(stack.dir, `volume-${++volumes}`);
  await mkdir(dir, { recursive: true });
  if (initial) {
    await writeFile(join(dir, ".credentials.json"), initial, { mode });
    await chmod(join(dir, ".credentials.json"), mode);
  }
  return dir;
}

const store = (dir: string, l = lock, owner = "test") => new CredentialStore({ dir, file: ".credentials.json", lock: l, owner, lockTimeoutMs: 10_000 });
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe("volume lock", () => {
  it("is exclusive, names its holder on timeout, and is free again after release", async () => {
    const id = join(stack.dir, "lock-a");
    const release = await lock.acquire(id, "worker-1", { timeoutMs: 1_000 });
    expect(await lock.holder(id)).toMatchObject({ owner: "worker-1" });
    const started = Date.now();
    const err = await lock2.acquire(id, "worker-2", { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeLockTimeoutError);
    expect((err as Error).message).toMatch(/held by worker-1/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(await release()).toBe(true);
    expect(await release()).toBe(true); // idempotent
    expect(await lock.holder(id)).toBeUndefined();
    const again = await lock2.acquire(id, "worker-2", { timeoutMs: 1_000 });
    expect(await again()).toBe(true);
  });

  it("hands over to a waiter as soon as the holder releases", async () => {
    const id = join(stack.dir, "lock-b");
    const release = await lock.acquire(id, "first", { timeoutMs: 1_000 });
    let granted = false;
    const waiter = lock2.acquire(id, "second", { timeoutMs: 5_000 }).then((r) => {
      granted = true;
      return r;
    });
    expect(await lock.holder(id)).toMatchObject({ owner: "first" });
    expect(granted).toBe(false);
    await release();
    const r2 = await waiter;
    expect(await lock.holder(id)).toMatchObject({ owner: "second" });
    await r2();
  });

  it("never releases a lock that has passed to someone else", async () => {
    const id = join(stack.dir, "lock-c");
    const kv = await ensureLocksBucket(stack.nc);
    const stale = await lock.acquire(id, "slow-holder", { timeoutMs: 1_000 });
    await kv.delete(volumeLockKey(id)); // what expiry does to a holder that took too long
    const next = await lock2.acquire(id, "next-holder", { timeoutMs: 1_000 });
    expect(await stale()).toBe(false);
    expect(await lock.holder(id)).toMatchObject({ owner: "next-holder" });
    expect(await next()).toBe(true);
  });

  it("uses a valid KV key derived from the volume and an idempotent bucket", async () => {
    expect(volumeLockKey("/var/lib/codex-auth")).toMatch(/^volume_[0-9a-f]{64}$/);
    expect(volumeLockKey("/var/lib/codex-auth")).not.toBe(volumeLockKey("/var/lib/claude-auth"));
    const before = await stack.jsm.streams.info(`KV_${LOCKS_BUCKET}`);
    await ensureLocksBucket(stack.nc);
    await ensureLocksBucket(nc2);
    const after = await stack.jsm.streams.info(`KV_${LOCKS_BUCKET}`);
    expect(after.config).toEqual(before.config);
    expect(after.config.max_age).toBe(30_000 * 1e6);
  });

  it("expires the lock of a holder that died", async () => {
    const other = await startStack();
    try {
      const short = new VolumeLock(await ensureLocksBucket(other.nc, 1, { ttlMs: 1_000 }));
      const id = join(other.dir, "dead");
      await short.acquire(id, "dead-holder", { timeoutMs: 1_000 }); // never released
      const started = Date.now();
      const release = await short.acquire(id, "survivor", { timeoutMs: 10_000 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(await short.holder(id)).toMatchObject({ owner: "survivor" });
      await release();
    } finally {
      await other.stop();
    }
  });
});

describe("CredentialStore.compareAndSet", () => {
  it("writes when the digest still matches, atomically, with mode 0600", async () => {
    const dir = await volume(creds("A0", "R0"), 0o644);
    const s = store(dir);
    const before = await s.read();
    expect(before?.digest).toBe(sha256Hex(creds("A0", "R0")));
    expect(await s.compareAndSet(before?.digest, creds("A1", "R1"), validClaude)).toBe("written");
    expect(await readFile(s.path)).toEqual(creds("A1", "R1"));
    expect(await modeOf(s.path)).toBe(0o600);
    expect(await readdir(dir)).toEqual([".credentials.json"]); // no temp file left behind
  });

  it("answers stale when somebody wrote first, and leaves their bytes", async () => {
    const dir = await volume(creds("A0", "R0"));
    const s = store(dir);
    const seeded = (await s.read())?.digest;
    expect(await s.compareAndSet(seeded, creds("A1", "R1"), validClaude)).toBe("written");
    expect(await s.compareAndSet(seeded, creds("Aold", "Rold"), validClaude)).toBe("stale");
    expect(await readFile(s.path)).toEqual(creds("A1", "R1"));
  });

  it("never writes credentials the validator rejects, even with the right digest", async () => {
    const dir = await volume(creds("A0", "R0"));
    const s = store(dir);
    const digest = (await s.read())?.digest;
    for (const bad of [creds("", ""), creds("A1", ""), Buffer.from("{"), Buffer.alloc(0)]) {
      expect(await s.compareAndSet(digest, bad, validClaude)).toBe("invalid");
    }
    expect(await s.compareAndSet(digest, creds("A1", "R1"), () => {
      throw new Error("validator blew up");
    })).toBe("invalid");
    expect(await readFile(s.path)).toEqual(creds("A0", "R0"));
  });

  it("creates the file only when it is expected to be absent", async () => {
    const dir = await volume();
    const s = store(dir);
    expect(await s.read()).toBeUndefined();
    expect(await s.compareAndSet(sha256Hex(creds("x", "y")), creds("A0", "R0"), validClaude)).toBe("stale");
    expect(await s.compareAndSet(undefined, creds("A0", "R0"), validClaude)).toBe("written");
    expect(await s.compareAndSet(undefined, creds("A1", "R1"), validClaude)).toBe("stale");
    expect(await modeOf(s.path)).toBe(0o600);
  });

  it("lets exactly one of many racing writers (two connections) win each round", async () => {
    const dir = await volume(creds("A0", "R0"));
    const stores = Array.from({ length: 8 }, (_, i) => store(dir, i % 2 === 0 ? lock : lock2, `writer-${i}`));
    for (let round = 1; round <= 5; round++) {
      const seen = await stores[0]!.read();
      const results = await Promise.all(
        stores.map((s, i) => s.compareAndSet(seen?.digest, creds(`A${round}-${i}`, `R${round}-${i}`), validClaude)),
      );
      expect(results.filter((r) => r === "written")).toHaveLength(1);
      expect(results.filter((r) => r === "stale")).toHaveLength(stores.length - 1);
      const winner = results.indexOf("written");
      expect(await readFile(stores[0]!.path)).toEqual(creds(`A${round}-${winner}`, `R${round}-${winner}`));
    }
  });
});

describe("seedPrivateHome", () => {
  it("copies only the files that exist, 0700/0600, and returns their digests for write-back", async () => {
    const dir = await volume(creds("A0", "R0"), 0o644);
    await writeFile(join(dir, "settings.json"), "{}\n", { mode: 0o644 });
    const home = join(stack.dir, "runs", "job-1", "home");
    const seeded = await seedPrivateHome(dir, home, [".credentials.json", "settings.json", "missing.json"]);
    expect(seeded).toEqual({ ".credentials.json": sha256Hex(creds("A0", "R0")), "settings.json": sha256Hex(Buffer.from("{}\n")) });
    expect((await readdir(home)).sort()).toEqual([".credentials.json", "settings.json"]);
    expect(await modeOf(home)).toBe(0o700);
    expect(await modeOf(join(home, ".credentials.json"))).toBe(0o600);
    expect(await modeOf(join(home, "settings.json"))).toBe(0o600);
    expect(await readFile(join(home, ".credentials.json"))).toEqual(creds("A0", "R0"));

    // After the run: the first run to bring newer credentials back wins; a run seeded from the
    // same digest finds them stale; a run whose CLI wiped its credentials cannot touch the volume.
    const s = store(dir);
    const digest = seeded[".credentials.json"];
    await writeFile(join(home, ".credentials.json"), creds("A1", "R1"));
    expect(await s.compareAndSet(digest, await readFile(join(home, ".credentials.json")), validClaude)).toBe("written");
    expect(await s.compareAndSet(digest, creds("A1b", "R1b"), validClaude)).toBe("stale");
    expect(await s.compareAndSet(sha256Hex(creds("A1", "R1")), creds("", ""), validClaude)).toBe("invalid");
    expect(await readFile(s.path)).toEqual(creds("A1", "R1"));
  });

  it("refuses paths that leave the volume", async () => {
    const dir = await volume(creds("A0", "R0"));
    await expect(seedPrivateHome(dir, join(stack.dir, "evil"), ["../outside.json"])).rejects.toThrow(/inside the volume/);
    expect(() => new CredentialStore({ dir, file: "/etc/passwd", lock })).toThrow(/inside the volume/);
  });
});

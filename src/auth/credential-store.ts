/**
 * The login volume as the source of truth for one credential file (codex `auth.json`, claude
 * `.credentials.json`). Runs never touch it directly: each gets a private home seeded from it
 * (`seedPrivateHome`), and newer credentials come back by compare-and-set against the digest they
 * replace, under the volume's lock, written atomically (temp file in the same directory, fsync,
 * rename, mode 0600). Bytes the validator rejects — emptied or unparseable credentials — never
 * reach the volume.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import type { VolumeLock } from "./volume-lock.js";

export interface CredentialSnapshot {
  bytes: Buffer;
  /** sha256 of bytes, hex. */
  digest: string;
}

export type CasResult = "written" | "stale" | "invalid";
export type CredentialValidator = (bytes: Uint8Array) => boolean;

/** What a caller may do while it holds the volume's lock. */
export interface LockedCredentials {
  read(): Promise<CredentialSnapshot | undefined>;
  compareAndSet(expectedDigest: string | undefined, next: Uint8Array, validate: CredentialValidator): Promise<CasResult>;
}

export interface CredentialStoreOptions {
  /** The mounted login volume. */
  dir: string;
  /** The credential file inside it, e.g. `auth.json` or `.credentials.json`. */
  file: string;
  lock: VolumeLock;
  /** Names the lock holder in errors and `nats kv get`: worker id, pid. */
  owner?: string;
  /**
   * Identifies the volume across machines (the lock key is its hash). Default: the absolute
   * path, which is right only where every machine mounts the volume at the same path.
   */
  lockId?: string;
  lockTimeoutMs?: number;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export class CredentialStore {
  readonly path: string;
  readonly lockId: string;
  private readonly owner: string;
  private readonly lockTimeoutMs: number;

  constructor(private readonly opts: CredentialStoreOptions) {
    this.path = join(resolve(opts.dir), safeRelative(opts.file));
    this.lockId = opts.lockId ?? resolve(opts.dir);
    this.owner = opts.owner ?? `pid-${process.pid}`;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 20_000;
  }

  /** The file as it is now (no lock: a snapshot for seeding or for a later compareAndSet). */
  async read(): Promise<CredentialSnapshot | undefined> {
    return readSnapshot(this.path);
  }

  /**
   * Writes `next` only if it passes `validate` and the file's digest is still `expectedDigest`
   * (undefined: the file must not exist). "stale" means somebody wrote first; the volume has
   * credentials at least as new, so the caller's are dropped.
   */
  async compareAndSet(expectedDigest: string | undefined, next: Uint8Array, validate: CredentialValidator): Promise<CasResult> {
    if (!safeValidate(validate, next)) return "invalid";
    return this.locked((tx) => tx.compareAndSet(expectedDigest, next, validate));
  }

  /** Runs `fn` holding the volume's lock; `fn` must finish well inside LOCK_TTL_MS. */
  async locked<T>(fn: (tx: LockedCredentials) => Promise<T>): Promise<T> {
    const release = await this.opts.lock.acquire(this.lockId, this.owner, { timeoutMs: this.lockTimeoutMs });
    try {
      return await fn({
        read: () => readSnapshot(this.path),
        compareAndSet: async (expected, next, validate) => {
          if (!safeValidate(validate, next)) return "invalid";
          const current = await readSnapshot(this.path);
          if (current?.digest !== expected) return "stale";
          if (current?.digest !== sha256Hex(next)) await writeAtomic(this.path, next);
          return "written";
        },
      });
    } finally {
      await release();
    }
  }
}

/**
 * Copies those of `files` (paths relative to the volume) that exist into `privateDir`, created
 * 0700, each file 0600. Returns the digest of every file seeded — the `expectedDigest` for
 * writing that file back after the run.
 */
export async function seedPrivateHome(volumeDir: string, privateDir: string, files: readonly string[]): Promise<Record<string, string>> {
  await mkdir(privateDir, { recursive: true, mode: DIR_MODE });
  await chmod(privateDir, DIR_MODE);
  const seeded: Record<string, string> = {};
  for (const file of files) {
    const rel = safeRelative(file);
    const snapshot = await readSnapshot(join(volumeDir, rel));
    if (!snapshot) continue;
    const target = join(privateDir, rel);
    await mkdir(dirname(target), { recursive: true, mode: DIR_MODE });
    await writeAtomic(target, snapshot.bytes);
    seeded[file] = snapshot.digest;
  }
  return seeded;
}

async function readSnapshot(path: string): Promise<CredentialSnapshot | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return { bytes, digest: sha256Hex(bytes) };
}

/** Temp file beside the target, fsync, rename over it, fsync the directory; 0600 throughout. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx", FILE_MODE);
    try {
      await fh.writeFile(bytes);
      await fh.chmod(FILE_MODE); // the umask may have narrowed or the mode been widened
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(dirname(path), "r").catch(() => undefined);
  await dir?.sync().catch(() => undefined);
  await dir?.close();
}

function safeValidate(validate: CredentialValidator, bytes: Uint8Array): boolean {
  try {
    return validate(bytes) === true;
  } catch {
    return false;
  }
}

/** A relative path that stays inside its directory. */
function safeRelative(file: string): string {
  const rel = normalize(file);
  if (isAbsolute(rel) || rel === ".." || rel.startsWith(`..${sep}`) || rel === ".") {
    throw new Error(`credential file must be a path inside the volume, got ${JSON.stringify(file)}`);
  }
  return rel;
}

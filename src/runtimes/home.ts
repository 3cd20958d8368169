/**
 * Private homes: each run gets its own copy of the login's files, so no two CLIs ever share one
 * credentials file, and rotated credentials go back to the volume by compare-and-set.
 */
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { LoginVolume, PrivateHome, WriteBackResult } from "./types.js";

export function digestOf(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes a credentials file back to its volume only if the volume still holds what the run was
 * seeded with (`expectedDigest`), never when `validate` refuses the bytes. The host provides it:
 * it takes the per-volume lock in NATS KV.
 */
export type CredentialWriter = (
  volume: LoginVolume,
  file: string,
  expectedDigest: string,
  next: Buffer,
  validate: (bytes: Uint8Array) => boolean,
) => Promise<"written" | "stale" | "invalid">;

export interface SeedSpec {
  /** Files (relative to the volume) copied into the private home when present. */
  copy: string[];
  /** The file the CLI rotates, and what counts as a usable one. */
  credential?: { file: string; validate: (bytes: Uint8Array) => boolean };
  env: (homeDir: string) => Record<string, string>;
}

export async function seedHome(
  volume: LoginVolume,
  homeDir: string,
  spec: SeedSpec,
  writer: CredentialWriter | undefined,
): Promise<PrivateHome> {
  await mkdir(homeDir, { recursive: true, mode: 0o700 });
  for (const file of spec.copy) {
    const from = join(volume.path, file);
    if (!(await exists(from))) continue;
    const to = join(homeDir, file);
    await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    await copyFile(from, to);
    await chmod(to, 0o600);
  }
  const credential = spec.credential;
  const seeded = credential ? await readIfExists(join(homeDir, credential.file)) : undefined;
  const seededDigest = seeded ? digestOf(seeded) : undefined;
  return {
    dir: homeDir,
    env: spec.env(homeDir),
    async writeBack(): Promise<WriteBackResult> {
      if (!credential || !writer || seededDigest === undefined) return "unchanged";
      const now = await readIfExists(join(homeDir, credential.file));
      if (!now || digestOf(now) === seededDigest) return "unchanged";
      return writer(volume, credential.file, seededDigest, now, credential.validate);
    },
  };
}

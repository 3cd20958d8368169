/**
 * Private homes: each run gets its own copy of the login's files, so no two CLIs ever share one
 * credentials file, and rotated credentials go back to the volume by compare-and-set.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { seedPrivateHome, sha256Hex } from "../auth/credential-store.js";
import { readAgentFile } from "./agent-files.js";
import type { LoginVolume, PrivateHome, WriteBackResult } from "./types.js";

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
  // Copies what exists, 0600 in a 0700 home, and returns the digest of each file it copied.
  const seeded = await seedPrivateHome(volume.path, homeDir, spec.copy);
  const credential = spec.credential;
  const seededDigest = credential ? seeded[credential.file] : undefined;
  return {
    dir: homeDir,
    env: spec.env(homeDir),
    credentialFile: credential ? join(homeDir, credential.file) : undefined,
    async writeBack(): Promise<WriteBackResult> {
      if (!credential || !writer || seededDigest === undefined) return "unchanged";
      // The home was the agent's: a link there (to another volume's login, say) is not followed.
      const file = await readAgentFile(homeDir, credential.file, 1024 * 1024);
      const now = file.kind === "file" ? file.data : undefined;
      if (!now || sha256Hex(now) === seededDigest) return "unchanged";
      return writer(volume, credential.file, seededDigest, now, credential.validate);
    },
  };
}

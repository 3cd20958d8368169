/**
 * Reading what an agent left in the directories it had (its private home, its out dir), as the
 * worker — who may read far more than the agent: nothing is followed through a link (a link to
 * /proc/self/environ would hand the worker's own environment over), only regular files are read
 * (a FIFO would block the read for good), and a size is checked before anything is read.
 */
import { constants, type Dirent } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join, sep } from "node:path";

/** Whether `root` and every directory from it down to `rel` are real directories, not links. */
async function realDirectories(root: string, rel: string): Promise<boolean> {
  let at = root;
  for (const part of ["", ...rel.split(sep).filter((p) => p !== "" && p !== ".")]) {
    if (part === "..") return false;
    at = part === "" ? at : join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st?.isDirectory()) return false;
  }
  return true;
}

export type AgentFile = { kind: "file"; data: Buffer } | { kind: "missing" } | { kind: "too-big"; size: number };

/** The regular file `root/rel`, read only when no link leads to it and it is at most `maxBytes`. */
export async function readAgentFile(root: string, rel: string, maxBytes: number): Promise<AgentFile> {
  const parts = rel.split(sep);
  if (!(await realDirectories(root, parts.slice(0, -1).join(sep)))) return { kind: "missing" };
  // O_NOFOLLOW: a link in the last place is refused; O_NONBLOCK: a FIFO opens without a writer.
  const handle = await open(join(root, rel), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return { kind: "missing" };
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { kind: "missing" };
    if (st.size > maxBytes) return { kind: "too-big", size: st.size };
    const data = Buffer.alloc(st.size);
    let read = 0;
    while (read < st.size) {
      const { bytesRead } = await handle.read(data, read, st.size - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return { kind: "file", data: data.subarray(0, read) };
  } finally {
    await handle.close();
  }
}

/** The entries of `root/rel` (links shown as links, never followed); none when a link leads there. */
export async function listAgentDir(root: string, rel: string): Promise<Dirent[]> {
  if (!(await realDirectories(root, rel))) return [];
  return readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
}

/** The regular files under `root/rel` (relative to `root`), at most `depth` directories down, no link followed. */
export async function walkAgentFiles(root: string, rel: string, depth: number, limit = 10_000): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, left: number): Promise<void> => {
    for (const entry of await listAgentDir(root, dir)) {
      if (found.length >= limit) return;
      const path = join(dir, entry.name);
      if (entry.isFile()) found.push(path);
      else if (entry.isDirectory() && left > 0) await walk(path, left - 1);
    }
  };
  await walk(rel, depth);
  return found;
}

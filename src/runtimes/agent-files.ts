/**
 * Reading what an agent left in the directories it had (its private home, its out dir), as the
 * worker — who may read far more than the agent: nothing is followed through a link (a link to
 * /proc/self/environ would hand the worker's own environment over), only regular files with one
 * name are read (a FIFO would block the read for good; a hard link is another file's second name),
 * and a size is checked before anything is read.
 *
 * Every step opens the next name relative to the directory already open (`/proc/self/fd/<fd>/<name>`,
 * O_NOFOLLOW): an agent process that outlived its run and swaps a directory for a link while the
 * worker walks gains nothing — a path checked first and opened after could be raced.
 */
import { constants, type Dirent } from "node:fs";
import { open, readdir, rmdir, unlink, type FileHandle } from "node:fs/promises";
import { sep } from "node:path";

const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const at = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;

/** `root/rel` opened as a directory, one name at a time, never through a link; undefined when it is not one. */
async function openDirectory(root: string, rel: string): Promise<FileHandle | undefined> {
  const parts = rel.split(sep).filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return undefined;
  let dir = await open(root, DIRECTORY).catch(() => undefined);
  for (const part of parts) {
    if (!dir) return undefined;
    const next: FileHandle | undefined = await open(at(dir, part), DIRECTORY).catch(() => undefined);
    await dir.close();
    dir = next;
  }
  return dir;
}

export type AgentFile = { kind: "file"; data: Buffer } | { kind: "missing" } | { kind: "too-big"; size: number };

/** The regular file `root/rel`, read only when no link leads to it, it has one name and is at most `maxBytes`. */
export async function readAgentFile(root: string, rel: string, maxBytes: number): Promise<AgentFile> {
  const parts = rel.split(sep);
  const name = parts.at(-1);
  if (!name || name === "." || name === "..") return { kind: "missing" };
  const dir = await openDirectory(root, parts.slice(0, -1).join(sep));
  if (!dir) return { kind: "missing" };
  // O_NOFOLLOW: a link in the last place is refused; O_NONBLOCK: a FIFO opens without a writer.
  const handle = await open(at(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  await dir.close();
  if (!handle) return { kind: "missing" };
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.nlink !== 1) return { kind: "missing" };
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
  const dir = await openDirectory(root, rel);
  if (!dir) return [];
  try {
    return await readdir(`/proc/self/fd/${dir.fd}`, { withFileTypes: true }).catch(() => []);
  } finally {
    await dir.close();
  }
}

/** The regular files under `root/rel` (relative to `root`), at most `depth` directories down, no link followed. */
export async function walkAgentFiles(root: string, rel: string, depth: number, limit = 10_000): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, left: number): Promise<void> => {
    for (const entry of await listAgentDir(root, dir)) {
      if (found.length >= limit) return;
      const path = dir === "" ? entry.name : `${dir}${sep}${entry.name}`;
      if (entry.isFile()) found.push(path);
      else if (entry.isDirectory() && left > 0) await walk(path, left - 1);
    }
  };
  await walk(rel, depth);
  return found;
}

/**
 * Removes the tree at `path` that an agent had, each name unlinked relative to its directory held
 * open (never through a link): a process that outlived the run and swaps a directory in it for a
 * link to somewhere only the worker may write makes the removal take the link, not that place.
 * For a worker that runs agents as another user, who could gain that way; otherwise `fs.rm` does.
 */
export async function removeAgentTree(path: string): Promise<void> {
  const parent = path.slice(0, path.lastIndexOf(sep)) || sep;
  const name = path.slice(path.lastIndexOf(sep) + 1);
  const dir = await open(parent, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => undefined);
  if (!dir) return;
  try {
    await removeEntry(dir, name);
  } finally {
    await dir.close();
  }
}

async function removeEntry(parent: FileHandle, name: string, tries = 3): Promise<void> {
  const sub = await open(at(parent, name), DIRECTORY).catch(() => undefined);
  if (!sub) {
    // Not a directory (a file, a link, a FIFO), or gone already; one swapped in meanwhile is taken again.
    await unlink(at(parent, name)).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return;
      if (err.code === "EISDIR" && tries > 1) return removeEntry(parent, name, tries - 1);
      throw err;
    });
    return;
  }
  try {
    for (const entry of await readdir(`/proc/self/fd/${sub.fd}`).catch(() => [] as string[])) await removeEntry(sub, entry);
  } finally {
    await sub.close();
  }
  await rmdir(at(parent, name)).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return;
    // Swapped for something else meanwhile, or refilled: that name goes as it is now.
    if (err.code === "ENOTDIR") return void (await unlink(at(parent, name)).catch(() => undefined));
    if (err.code === "ENOTEMPTY" && tries > 1) return removeEntry(parent, name, tries - 1);
    throw err;
  });
}

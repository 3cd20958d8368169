/**
 * One `moonmind dev` per data dir. Two stacks on one JetStream store corrupt it, and the second
 * one's exit would delete the first one's `nats.url`. The lock is a file created exclusively,
 * naming the launcher and its nats-server; a lock whose launcher is gone is stale and taken over
 * (its orphaned nats-server, if it still runs on this store, is stopped first).
 */
import { openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.js";
import { processAlive as alive } from "../runtimes/procfs.js";

export const LOCK_FILE = "dev.lock";

interface LockBody {
  pid: number;
  serverPid?: number;
  startedAt: string;
}

export interface DataDirLock {
  path: string;
  /** Records the stack's own nats-server, so a successor can stop it if this launcher dies. */
  setServerPid(pid: number): void;
  release(): void;
}


export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  const body: LockBody = { pid: process.pid, startedAt: new Date().toISOString() };
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeFileSync(fd, JSON.stringify(body));
      closeSync(fd);
      return {
        path,
        setServerPid(pid) {
          writeFileSync(path, JSON.stringify({ ...body, serverPid: pid }));
        },
        release() {
          const held = read(path);
          if (held?.pid === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const held = read(path);
    if (held && alive(held.pid) && held.pid !== process.pid) {
      throw new ConfigError(`another moonmind dev (pid ${held.pid}, since ${held.startedAt}) is running on ${dataDir}`, {
        remedy: `use that stack (its NATS_URL is in ${join(dataDir, "nats.url")}), stop it with Ctrl-C or kill ${held.pid}, or give this one its own MOONMIND_DATA_DIR`,
      });
    }
    // Stale: its launcher died without cleaning up. Its server must not share the store with ours.
    if (held?.serverPid && alive(held.serverPid) && isNatsServer(held.serverPid)) await stopProcess(held.serverPid);
    rmSync(join(dataDir, "nats.url"), { force: true });
    rmSync(path, { force: true });
  }
  throw new ConfigError(`could not take the lock ${path}`, { remedy: `remove ${path} if no moonmind dev runs on ${dataDir}` });
}

/** A pid from an old lock may belong to anything by now: only a nats-server is ours to stop. */
function isNatsServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("nats-server");
  } catch {
    return false;
  }
}

function read(path: string): LockBody | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LockBody;
  } catch {
    return undefined;
  }
}

async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let waited = 0; waited < 10_000 && alive(pid); waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

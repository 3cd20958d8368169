/**
 * The actors of a chaos run as real child processes (spawnActor), one slot per replica. A slot
 * behaves like a container with a restart policy: killed by the run, it comes back after the
 * pause the fault names; dying by itself, it is counted and restarted after a second.
 */
import type { ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { spawnActor, type ActorName } from "../../src/cli/commands/actor.js";

export type SlotState = "up" | "stalled" | "down";

export interface UnexpectedExit {
  slot: string;
  at: number;
  code: number | null;
  signal: string | null;
}

export interface ActorSlot {
  readonly kind: ActorName;
  readonly name: string;
  /** The MOONMIND_WORKER_ID of the current incarnation (workers only). */
  readonly workerId: string | undefined;
  readonly dataDir: string | undefined;
  readonly state: SlotState;
  readonly pid: number | undefined;
  /** When the current incarnation was spawned (ms since epoch). */
  readonly upSince: number;
  start(): void;
  kill9(): Promise<void>;
  stall(): void;
  resume(): void;
  /** SIGTERM, then SIGKILL after `graceMs`; true when it stopped by itself. */
  stop(graceMs: number): Promise<boolean>;
}

export interface SlotOptions {
  kind: ActorName;
  name: string;
  env: Record<string, string>;
  logDir: string;
  /** Worker id per incarnation (1, 2, ...). */
  workerId?: (incarnation: number) => string;
  dataDir?: string;
  onUnexpectedExit: (exit: UnexpectedExit) => void;
}

export function createSlot(o: SlotOptions): ActorSlot {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let state: SlotState = "down";
  let incarnation = 0;
  let upSince = 0;
  let stopping = false;
  let workerId: string | undefined;
  let log: WriteStream | undefined;
  const expected = new WeakSet<ChildProcess>();

  const start = () => {
    if (stopping || child) return;
    incarnation++;
    workerId = o.workerId?.(incarnation);
    const env = { ...o.env, ...(workerId ? { MOONMIND_WORKER_ID: workerId } : {}), ...(o.dataDir ? { MOONMIND_DATA_DIR: o.dataDir } : {}) };
    log ??= createWriteStream(join(o.logDir, `${o.name}.log`), { flags: "a" });
    const c = spawnActor(o.kind, env, { stdio: "pipe" });
    child = c;
    state = "up";
    upSince = Date.now();
    log.write(`--- ${new Date().toISOString()} incarnation ${incarnation} pid ${c.pid} ${workerId ?? ""}\n`);
    c.stdout?.pipe(log, { end: false });
    c.stderr?.pipe(log, { end: false });
    exited = new Promise((resolve) =>
      c.once("exit", (code, signal) => {
        if (child === c) {
          child = undefined;
          state = "down";
        }
        if (!expected.has(c) && !stopping) {
          o.onUnexpectedExit({ slot: o.name, at: Date.now(), code, signal });
          setTimeout(start, 1_000).unref();
        }
        resolve();
      }),
    );
  };

  const signal = (sig: NodeJS.Signals) => {
    if (child?.pid !== undefined) process.kill(child.pid, sig);
  };

  return {
    kind: o.kind,
    name: o.name,
    get workerId() {
      return workerId;
    },
    dataDir: o.dataDir,
    get state() {
      return state;
    },
    get pid() {
      return child?.pid;
    },
    get upSince() {
      return upSince;
    },
    start,
    async kill9() {
      if (!child) return;
      expected.add(child);
      signal("SIGKILL");
      await exited;
    },
    stall() {
      if (state !== "up") return;
      signal("SIGSTOP");
      state = "stalled";
    },
    resume() {
      if (state !== "stalled") return;
      signal("SIGCONT");
      state = "up";
    },
    async stop(graceMs) {
      stopping = true;
      const c = child;
      if (!c) return true;
      expected.add(c);
      if (state === "stalled") signal("SIGCONT");
      signal("SIGTERM");
      let forced = false;
      const timer = setTimeout(() => {
        forced = true;
        signal("SIGKILL");
      }, graceMs);
      await exited;
      clearTimeout(timer);
      await new Promise<void>((r) => (log ? log.end(r) : r()));
      return !forced;
    },
  };
}

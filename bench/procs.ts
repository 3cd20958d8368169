/**
 * Processes the benchmark starts and reads: `moonmind worker` processes (each in its own process
 * group, stopped with the group, never left behind) and what /proc says about a process tree —
 * resident memory and CPU time.
 */
import { ACTOR_NODE_FLAGS } from "../src/cli/commands/actor.js";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..");
export const BIN = join(ROOT, "src/cli/bin.mjs");

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface Stat {
  pid: number;
  ppid: number;
  /** CPU seconds of the process itself (user + system). */
  self: number;
  /** CPU seconds of its children that have ended and been waited for. */
  reaped: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const n = (i: number) => Number(f[i - 3]);
    return { pid, ppid: n(4), self: (n(14) + n(15)) / CLK_TCK, reaped: (n(16) + n(17)) / CLK_TCK };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** The process and every live descendant. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s.pid]);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Each process of the tree: its command line (shortened) and resident memory in MiB. */
export function treeMembers(root: number): Array<{ pid: number; cmd: string; rssMiB: number }> {
  return processTree(root).flatMap((pid) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim().slice(0, 160);
      return [{ pid, cmd, rssMiB: Number(m?.[1] ?? 0) / 1024 }];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** Resident memory of the process and all its descendants, in MiB (VmRSS summed). */
export function treeRssMiB(root: number): number {
  return treeMembers(root).reduce((sum, p) => sum + p.rssMiB, 0);
}

/**
 * CPU seconds of a process tree so far, split: `runtime` is the time of the given long-lived
 * processes themselves (the worker's own JavaScript, the server), `children` everything their
 * short-lived children (git, the agent) used, ended or still running.
 */
export interface TreeCpu {
  runtime: number;
  children: number;
}

export function treeCpu(root: number): TreeCpu {
  const [rootPid, ...rest] = processTree(root);
  const r = readStat(rootPid!);
  let runtime = r?.self ?? 0;
  let children = r?.reaped ?? 0;
  for (const pid of rest) {
    const s = readStat(pid);
    if (!s) continue;
    // A descendant that runs the worker's code (the actor process of a CLI wrapper) counts as runtime.
    if (isNodeActor(pid)) {
      runtime += s.self;
      children += s.reaped;
    } else children += s.self + s.reaped;
  }
  return { runtime, children };
}

function isNodeActor(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => a.endsWith("main.ts") || a.endsWith("main.js") || a.endsWith("bin.mjs"));
  } catch {
    return false;
  }
}

export function cpuDelta(a: TreeCpu, b: TreeCpu): TreeCpu {
  return { runtime: b.runtime - a.runtime, children: b.children - a.children };
}

export interface WorkerProcess {
  id: string;
  pid: number;
  child: ChildProcess;
  /** Resolves once it logged "worker serving". */
  serving: Promise<void>;
  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<WorkerProcess>();

/** Kills every worker group still running (on the way out, whatever happened). */
export function killAll(): void {
  for (const w of live) {
    try {
      process.kill(-w.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Starts `node src/cli/bin.mjs worker` with exactly `env` (plus PATH and HOME), logging at info, with the actors' Node flags (as the `moonmind` command and `npm start` pass them). */
export function spawnWorker(id: string, env: Record<string, string>, cwd: string): WorkerProcess {
  // BENCH_CPU_PROF=<dir>: every worker writes a V8 CPU profile there when it stops (--cpu-prof).
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...ACTOR_NODE_FLAGS, ...prof, BIN, "worker"], {
    cwd, // not the checkout: bin.mjs would read a .env there
    // Its stdin is a pipe from this process: should the bench die, even by SIGKILL, the worker stops.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env, MOONMIND_WORKER_ID: id, MOONMIND_LOG_LEVEL: "info", MOONMIND_STOP_WITH_PARENT: "1" },
    stdio: ["pipe", "ignore", "pipe"],
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let tail = "";
  const serving = new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      tail = (tail + d).slice(-4_000);
      if (tail.includes('"worker serving"') || tail.includes("worker serving")) resolve();
    });
    void exited.then(() => reject(new Error(`worker ${id} exited before serving: ${tail.slice(-800)}`)));
  });
  serving.catch(() => undefined);
  const w: WorkerProcess = {
    id,
    pid: child.pid!,
    child,
    serving,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // gone
          }
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      try {
        process.kill(-child.pid!, "SIGKILL"); // anything of its group left behind
      } catch {
        // none
      }
      live.delete(w);
    },
  };
  live.add(w);
  return w;
}

/** Busy CPU seconds of the whole machine so far (every core, from /proc/stat): what else ran too. */
export function machineBusy(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLK_TCK;
}

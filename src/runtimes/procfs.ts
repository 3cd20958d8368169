/**
 * What /proc says about processes: state, parent, group, start time, environment and PID
 * namespace — read afresh on every call, since a pid names a process only with its start time.
 */
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, readlink } from "node:fs/promises";

export interface Proc {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot: with the pid, it names one process for good. */
  start: string;
}

export const HAVE_PROC = existsSync("/proc/self/stat");

function parseStat(pid: number, stat: string): Proc | undefined {
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (f.length < 20) return undefined;
  return { pid, state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), start: f[19]! };
}

export async function readProc(pid: number): Promise<Proc | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat === undefined ? undefined : parseStat(pid, stat);
}

/** The process exists (it may belong to another user: EPERM still means it is there). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function listProcs(): Promise<Proc[]> {
  const pids = (await readdir("/proc").catch(() => [])).filter((name) => /^\d+$/.test(name)).map(Number);
  return (await Promise.all(pids.map(readProc))).filter((p): p is Proc => p !== undefined);
}

/** Running: the same process (pid and start time) and not a zombie. */
export async function anyAlive(procs: Proc[]): Promise<boolean> {
  for (const p of procs) {
    if (p.pid < 0 && groupAlive(-p.pid)) return true;
    const now = await readProc(p.pid);
    if (now && now.start === p.start && now.state !== "Z" && now.state !== "X") return true;
  }
  return false;
}

/** The live children of a process (where the kernel lists them: CONFIG_PROC_CHILDREN). */
export async function childrenOf(pid: number): Promise<Proc[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  const procs = await Promise.all(text.split(" ").filter(Boolean).map((c) => readProc(Number(c))));
  return procs.filter((p): p is Proc => p !== undefined && p.ppid === pid);
}

export async function readEnviron(pid: number): Promise<Buffer> {
  return readFile(`/proc/${pid}/environ`).catch(() => Buffer.alloc(0));
}

export async function pidNs(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
}

/** PID 1 of a namespace below ours (the sandbox's init). */
export async function nsInit(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const ids = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
  return ids.length > 1 && ids.at(-1) === "1";
}

let selfStart: string | undefined;
/** This process's start time (clock ticks since boot), "0" without /proc. */
export function ownStart(): string {
  selfStart ??= HAVE_PROC ? (parseStat(process.pid, readFileSync("/proc/self/stat", "utf8"))?.start ?? "0") : "0";
  return selfStart;
}

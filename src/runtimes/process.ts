/**
 * Runs an agent CLI: argv array, no stdin, a closed environment, output read line by line, and
 * — on cancel, timeout or its own exit — every process it started stopped before the promise
 * settles (SIGTERM, SIGKILL after a grace period).
 *
 * "Every process it started" is tracked three ways, so a `setsid` or a double fork does not
 * escape: its own process group, a per-run marker in the environment (`MOONMIND_RUN_TOKEN`, which
 * every descendant inherits unless it clears it) and, in the sandbox (sandbox.ts), its PID
 * namespace, which dies as a whole. Descendants not yet reparented are followed by parent pid.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync } from "node:fs";
import { readlink } from "node:fs/promises";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { delimiter, isAbsolute, join, sep } from "node:path";
import { diesWithWorker } from "./parent-death.js";
import { anyAlive, childrenOf, groupAlive, HAVE_PROC, listProcs, nsInit, ownStart, pidNs, readEnviron, readProc, type Proc } from "./procfs.js";
import { sandboxInvocation, type SandboxLayout } from "./sandbox.js";
import type { AgentInvocation } from "./types.js";

/** Set in every agent's environment: `<worker pid>.<worker start time>.<random>`. */
export const RUN_TOKEN_VAR = "MOONMIND_RUN_TOKEN";

export interface ProcessResult {
  exitCode: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** The binary could not be started at all (missing, not executable). */
  spawnError?: Error;
  /** Processes of the run still alive when it gave up on them (stuck in the kernel); normally absent. */
  survivors?: number[];
}

export interface RunOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  killGraceMs: number;
  onLine: (line: string, stream: "stdout" | "stderr") => void;
  /** Run the CLI in the bubblewrap sandbox with this layout (see sandbox.ts); absent: no sandbox. */
  sandbox?: SandboxLayout | undefined;
}

/** How long output may still arrive after the last process of the run is gone. */
const DRAIN_MS = 2_000;
/** At least this long of SIGKILL rounds before a process counts as a survivor. */
const KILL_ROUNDS_MS = 3_000;
const POLL_MS = 50;
/** How long a sandbox's init may take to end after the sandbox itself exited. */
const INIT_EXIT_MS = 1_000;

export function runProcess(inv: AgentInvocation, opts: RunOptions): Promise<ProcessResult> {
  return new Promise((resolve) => {
    let timedOut = false;
    let cancelled = false;
    const token = `${process.pid}.${ownStart()}.${randomBytes(8).toString("hex")}`;
    const marked: AgentInvocation = { ...inv, env: { ...inv.env, [RUN_TOKEN_VAR]: token } };
    const sandboxed = opts.sandbox !== undefined;
    const run = opts.sandbox ? sandboxInvocation(marked, opts.sandbox) : diesWithWorker(marked);
    // A wrapper (bwrap, setpriv) would report a missing CLI as its own exit: keep "could not start" for what it is.
    const missing = run.bin !== inv.bin ? missingBinary(inv) : undefined;
    if (missing) {
      resolve({ exitCode: 127, signal: null, timedOut: false, cancelled: false, spawnError: missing });
      return;
    }
    const child = spawn(run.bin, run.args, {
      cwd: run.cwd,
      env: run.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group and session
      ...(run.user ? { uid: run.user.uid, gid: run.user.gid } : {}),
    });
    const tree = child.pid === undefined ? undefined : new RunTree(child.pid, token, sandboxed);
    child.once("spawn", () => tree?.noteInit());

    let reaping: Promise<number[]> | undefined;
    // A look into /proc that fails must not leave the run unsettled: the group is still killed.
    const reap = (graceMs: number, gentle: boolean) =>
      tree ? tree.reap(graceMs, gentle).catch(() => (signal(-tree.root, "SIGKILL"), [] as number[])) : Promise.resolve([]);
    const stop = () => {
      reaping ??= reap(opts.killGraceMs, true);
    };
    const onAbort = () => {
      cancelled = true;
      stop();
    };
    const timeout = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });

    let open = 2;
    let drained: () => void = () => undefined;
    const streamsClosed = new Promise<void>((done) => (drained = done));
    const readers = (
      [
        ["stdout", child.stdout],
        ["stderr", child.stderr],
      ] as const
    ).map(([name, stream]) => {
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      rl.on("line", (line) => {
        tree?.noteInit();
        opts.onLine(line, name);
      });
      rl.on("close", () => {
        if (--open === 0) drained();
      });
      return rl;
    });

    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    let settling = false;
    const settle = async () => {
      if (settling) return;
      settling = true;
      tree?.rootExited();
      // After a cancel or timeout the stop in progress finishes; after the CLI's own exit, what
      // it left behind is killed at once — unless it is a sandbox whose namespace has ended.
      const afterExit = async () => ((await tree?.namespaceEnded(INIT_EXIT_MS)) ? [] : reap(0, false));
      const survivors = await (reaping ??= afterExit());
      clearTimeout(timeout);
      opts.signal?.removeEventListener("abort", onAbort);
      const late = await Promise.race([streamsClosed.then(() => false), sleep(DRAIN_MS).then(() => true)]);
      if (late) {
        // A process outside every tracking (it cleared its environment and left the group) holds the pipe.
        child.stdout.destroy();
        child.stderr.destroy();
        for (const rl of readers) rl.close();
      }
      const code = exit?.code ?? null;
      const signal = exit?.signal ?? null;
      resolve({
        exitCode: code ?? (spawnError ? 127 : 128 + signalNumber(signal)),
        signal,
        timedOut,
        cancelled,
        ...(spawnError ? { spawnError } : {}),
        ...(survivors.length > 0 ? { survivors } : {}),
      });
    };
    child.on("error", (err) => {
      spawnError = err;
      exit ??= { code: 127, signal: null };
      void settle();
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      void settle();
    });
  });
}

/** The processes of one run, found afresh on every look. */
class RunTree {
  private rootAlive = true;
  private readonly needle: Buffer;

  constructor(
    readonly root: number,
    token: string,
    private readonly sandboxed: boolean,
  ) {
    this.needle = Buffer.from(`${RUN_TOKEN_VAR}=${token}`);
  }

  /** The sandbox's namespace init (the root's one child), once seen. */
  private init: Proc | undefined;
  private looking: Promise<void> | undefined;

  /** Looks for the sandbox's init while the root is alive: one read of /proc until it is found. */
  noteInit(): void {
    if (!this.sandboxed || this.init || this.looking || !this.rootAlive) return;
    this.looking = (async () => {
      const [init] = await childrenOf(this.root);
      if (init && this.rootAlive && (await nsInit(init.pid))) this.init = init;
    })()
      .catch(() => undefined)
      .finally(() => (this.looking = undefined));
  }

  /**
   * After the root's exit, whether the sandbox's namespace has ended: the kernel kills and reaps
   * every process in a PID namespace before its init's exit completes, so once the init seen is
   * gone (or a zombie) nothing of the run is left. One process watched instead of two scans of
   * /proc (~14 ms a job). False when that cannot be told: the init was never seen, or outlived
   * `boundMs` — the scans decide then.
   */
  async namespaceEnded(boundMs: number): Promise<boolean> {
    await this.looking;
    if (!this.init) return false;
    const deadline = Date.now() + boundMs;
    while (await anyAlive([this.init])) {
      if (Date.now() >= deadline) return false;
      await sleep(1);
    }
    return true;
  }

  /** The root has been reaped: its pid may be reused and no longer identifies the run. */
  rootExited(): void {
    this.rootAlive = false;
  }

  async members(): Promise<Proc[]> {
    // Without /proc (not Linux) only the process group can be seen: it stands for the run.
    if (!HAVE_PROC) return groupAlive(this.root) ? [{ pid: -this.root, state: "S", ppid: 0, pgrp: this.root, start: "" }] : [];
    return findRun(async (p) => (this.rootAlive && p.pid === this.root) || p.pgrp === this.root || (await readEnviron(p.pid)).includes(this.needle));
  }

  /**
   * SIGTERM to everything (gently: not to the sandbox's monitor and namespace init, whose death
   * would SIGKILL the rest at once), wait up to `graceMs`, then SIGKILL rounds until none is left.
   * Returns the pids that would not die.
   */
  async reap(graceMs: number, gentle: boolean): Promise<number[]> {
    if (gentle) {
      const deadline = Date.now() + graceMs;
      const termed = new Set<number>();
      for (;;) {
        const members = await this.members();
        if (members.length === 0) return [];
        for (const p of members) {
          if (termed.has(p.pid)) continue;
          termed.add(p.pid);
          if (this.sandboxed && (p.pid === this.root || (await nsInit(p.pid)))) continue;
          signal(p.pid, "SIGTERM");
        }
        if (Date.now() >= deadline) break;
        // Cheap polling of the known ones; a full look again once they are gone.
        do await sleep(POLL_MS);
        while (Date.now() < deadline && (await anyAlive(members)));
      }
    }
    // In the sandbox, the namespace's init first: the whole namespace dies with it and bwrap, its
    // parent, reaps it and exits (killed together, the init would be left to the machine's init).
    const spare = async (left: Proc[]) => {
      for (const p of left) if (p.pid !== this.root && (await nsInit(p.pid))) return [this.root];
      return [];
    };
    return killRounds(() => this.members(), this.sandboxed ? spare : undefined);
  }
}

/** Every process, apart from this one and its group, that `seed` picks, plus what belongs with them. */
async function findRun(seed: (p: Proc) => Promise<boolean>): Promise<Proc[]> {
  const self = await readProc(process.pid);
  const procs = (await listProcs()).filter((p) => p.state !== "Z" && p.state !== "X" && p.pid !== process.pid && p.pgrp !== self?.pgrp);
  const picked = new Set<number>();
  await Promise.all(procs.map(async (p) => ((await seed(p)) ? picked.add(p.pid) : undefined)));
  // Descendants not yet reparented, and whole PID namespaces (the sandbox) the run is in.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (picked.has(p.pid) || !picked.has(p.ppid)) continue;
      picked.add(p.pid);
      grew = true;
    }
  }
  const own = await pidNs(process.pid);
  const spaces = new Set<string>();
  for (const pid of picked) {
    const ns = await pidNs(pid);
    if (ns && ns !== own) spaces.add(ns);
  }
  if (spaces.size > 0) {
    await Promise.all(
      procs.map(async (p) => {
        if (picked.has(p.pid)) return;
        const ns = await pidNs(p.pid);
        if (ns && spaces.has(ns)) picked.add(p.pid);
      }),
    );
  }
  return procs.filter((p) => picked.has(p.pid));
}

/** SIGKILL rounds until nothing is left; `spare` names pids that may wait a round (a few rounds at most). */
async function killRounds(members: () => Promise<Proc[]>, spare?: (left: Proc[]) => Promise<number[]>): Promise<number[]> {
  const deadline = Date.now() + KILL_ROUNDS_MS;
  for (let round = 0; ; round++) {
    const left = await members();
    if (left.length === 0) return [];
    if (Date.now() >= deadline) return left.map((p) => p.pid);
    const spared = round < 4 && spare ? await spare(left) : [];
    for (const p of left) if (!spared.includes(p.pid)) signal(p.pid, "SIGKILL");
    await sleep(POLL_MS / 2);
  }
}

/**
 * Stops agents an earlier, dead life of a worker left running: processes carrying a run token
 * whose worker (pid and start time) is gone — never a live worker's — and, with `workdir`, only
 * those whose working directory or environment (HOME, CODEX_HOME…) lies under it. SIGTERM, then
 * SIGKILL after `graceMs`. Call it at worker start, before taking work.
 */
export async function killOrphanAgents(opts: { workdir?: string; graceMs?: number } = {}): Promise<{ killed: number[]; survivors: number[] }> {
  const prefix = Buffer.from(`${RUN_TOKEN_VAR}=`);
  const owners = new Map<string, boolean>();
  const ownerAlive = async (token: string) => {
    const [pid, start] = token.split(".");
    const key = `${pid}.${start}`;
    if (!owners.has(key)) {
      const p = await readProc(Number(pid));
      owners.set(key, p !== undefined && p.state !== "Z" && p.start === start);
    }
    return owners.get(key)!;
  };
  const orphans = () =>
    findRun(async (p) => {
      const env = await readEnviron(p.pid);
      const at = env.indexOf(prefix);
      if (at < 0) return false;
      const end = env.indexOf(0, at);
      const token = env.subarray(at + prefix.length, end < 0 ? undefined : end).toString();
      if (await ownerAlive(token)) return false;
      return !opts.workdir || (await underWorkdir(p.pid, env, opts.workdir));
    });
  const found = await orphans();
  if (found.length === 0) return { killed: [], survivors: [] };
  for (const p of found) signal(p.pid, "SIGTERM");
  const deadline = Date.now() + (opts.graceMs ?? 5_000);
  while (Date.now() < deadline && (await anyAlive(found))) await sleep(POLL_MS);
  const survivors = await killRounds(orphans);
  return { killed: found.map((p) => p.pid), survivors };
}

async function underWorkdir(pid: number, env: Buffer, workdir: string): Promise<boolean> {
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (cwd && within(cwd, workdir)) return true;
  return env
    .toString()
    .split("\0")
    .some((kv) => within(kv.slice(kv.indexOf("=") + 1), workdir));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** A CLI the sandbox could not start: spawn's own ENOENT/EACCES, found before bwrap hides it. */
function missingBinary(inv: AgentInvocation): Error | undefined {
  const candidates = isAbsolute(inv.bin) ? [inv.bin] : (inv.env.PATH ?? "").split(delimiter).filter(Boolean).map((d) => join(d, inv.bin));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return undefined;
    } catch {
      // next
    }
  }
  const code = candidates.some((f) => existsSync(f)) ? "EACCES" : "ENOENT";
  return Object.assign(new Error(`spawn ${inv.bin} ${code}`), { code, syscall: `spawn ${inv.bin}`, path: inv.bin });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 };
  return signal ? (numbers[signal] ?? 0) : 0;
}

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

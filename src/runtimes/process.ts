/**
 * Runs an agent CLI: argv array, no stdin, a closed environment, its own process group so a
 * cancel or timeout takes down everything it started (SIGTERM, SIGKILL after a grace period),
 * and output read line by line.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { AgentInvocation } from "./types.js";

export interface ProcessResult {
  exitCode: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** The binary could not be started at all (missing, not executable). */
  spawnError?: Error;
}

export interface RunOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  killGraceMs: number;
  onLine: (line: string, stream: "stdout" | "stderr") => void;
}

export function runProcess(inv: AgentInvocation, opts: RunOptions): Promise<ProcessResult> {
  return new Promise((resolve) => {
    let timedOut = false;
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(inv.bin, inv.args, {
      cwd: inv.cwd,
      env: inv.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group: kill(-pid) reaches the CLI's children too
      ...(inv.user ? { uid: inv.user.uid, gid: inv.user.gid } : {}),
    });

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const stop = () => {
      killGroup("SIGTERM");
      killTimer ??= setTimeout(() => killGroup("SIGKILL"), opts.killGraceMs);
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

    const streams = [
      ["stdout", child.stdout],
      ["stderr", child.stderr],
    ] as const;
    let open = streams.length;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    const finish = () => {
      if (open > 0 || exit === undefined) return;
      clearTimeout(timeout);
      opts.signal?.removeEventListener("abort", onAbort);
      // The group may still hold children that ignored SIGTERM; the grace timer handles them.
      if (!killTimer) killGroup("SIGKILL");
      else setTimeout(() => clearTimeout(killTimer), opts.killGraceMs + 10).unref();
      resolve({
        exitCode: exit.code ?? (spawnError ? 127 : 128 + signalNumber(exit.signal)),
        signal: exit.signal,
        timedOut,
        cancelled,
        ...(spawnError ? { spawnError } : {}),
      });
    };
    for (const [name, stream] of streams) {
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      rl.on("line", (line) => opts.onLine(line, name));
      rl.on("close", () => {
        open--;
        finish();
      });
    }
    child.on("error", (err) => {
      spawnError = err;
      exit ??= { code: 127, signal: null };
      finish();
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      finish();
    });
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 };
  return signal ? (numbers[signal] ?? 0) : 0;
}

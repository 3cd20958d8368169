/** What the three CLI adapters share: running a check command, versions, volumes per shard. */
import { runProcess } from "./process.js";
import type { Runtime } from "../schemas/runtime.js";
import type { AgentInvocation, LoginVolume } from "./types.js";

export interface CheckRun {
  exitCode: number;
  output: string;
  missing: boolean;
  error?: string;
}

/** Runs a short non-interactive command of the CLI (login status, --version), bounded in time. */
export async function runCheck(inv: AgentInvocation, timeoutMs = 30_000, signal?: AbortSignal): Promise<CheckRun> {
  const lines: string[] = [];
  const r = await runProcess(inv, {
    ...(signal ? { signal } : {}),
    timeoutMs,
    killGraceMs: 1_000,
    onLine: (line) => lines.push(line),
  });
  const missing = (r.spawnError as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
  return {
    exitCode: r.timedOut ? 124 : r.exitCode,
    output: lines.join("\n"),
    missing,
    ...(r.spawnError ? { error: r.spawnError.message } : r.timedOut ? { error: `timed out after ${timeoutMs} ms` } : {}),
  };
}

export async function cliVersion(bin: string, env: Record<string, string>): Promise<string | undefined> {
  const r = await runCheck({ bin, args: ["--version"], env, cwd: process.cwd() }, 30_000);
  return r.exitCode === 0 ? r.output.trim().split("\n").at(-1)?.trim() : undefined;
}

/** `{shard}` in a volume path (and name) gives every shard its own login. */
export function volumeForShard(name: string, pathTemplate: string, shard: number): LoginVolume {
  return {
    name: name.replaceAll("{shard}", String(shard)),
    path: pathTemplate.replaceAll("{shard}", String(shard)),
  };
}

/** Commits an agent makes need an identity; the worker's own is never used. */
export const AGENT_GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "MoonMind Agent",
  GIT_AUTHOR_EMAIL: "agent@moonmind.invalid",
  GIT_COMMITTER_NAME: "MoonMind Agent",
  GIT_COMMITTER_EMAIL: "agent@moonmind.invalid",
  GIT_TERMINAL_PROMPT: "0",
} as const;

export function oneLine(text: string, max = 300): string {
  const s = text.replace(/\s+/g, " ").trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

export interface CliSettings {
  bin: string;
  volumeName: string;
  volumePath: string;
}

/** What every adapter shares: its binary, its volumes per shard, and the remedy it names. */
export abstract class CliAdapterBase<S extends CliSettings> {
  abstract readonly runtime: Runtime;
  readonly bin: string;

  constructor(protected readonly settings: S) {
    this.bin = settings.bin;
  }

  volumeFor(shard: number): LoginVolume {
    return volumeForShard(this.settings.volumeName, this.settings.volumePath, shard);
  }

  remedy(volume: LoginVolume): string {
    return `run tools/auth-${this.runtime}-volume.sh --local ${volume.path} (or moonmind auth ${this.runtime}) to log in on volume ${volume.name}`;
  }
}

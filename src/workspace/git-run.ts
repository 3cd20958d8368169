/**
 * The worker's git processes: before the agent has a checkout (`git`: the worker's environment,
 * hooks and the system config off) and after (`lockedGit`: an explicit git dir and work tree, a
 * closed environment, every repository-configurable executable off). See ./git.ts.
 */
import { execa } from "execa";
import { RetryableError } from "../errors.js";
import { withParentDeath } from "../runtimes/parent-death.js";

export const DEFAULT_TIMEOUT_MS = 600_000;

/** Git never prompts, never runs a transport helper, never reads the system config. */
const GIT_ENV = {
  GIT_TERMINAL_PROMPT: "0",
  GIT_ASKPASS: "/bin/false",
  SSH_ASKPASS: "/bin/false",
  GIT_SSH_COMMAND: "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
  GIT_CONFIG_NOSYSTEM: "1",
};
// A workspace lives only as long as its job: nothing in it is worth an fsync.
const GIT_SAFE = ["-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false", "-c", "core.fsync=none"];

/**
 * What the worker's git is told after the agent ran: no executable of any repository's choosing,
 * no network, links recorded as links. Its own git dir's config holds none of these anyway.
 */
const GIT_LOCKED = [
  "core.hooksPath=/dev/null",
  "core.fsmonitor=false",
  "core.untrackedCache=false",
  "core.attributesFile=/dev/null",
  "core.excludesFile=/dev/null",
  "core.symlinks=true",
  "core.autocrlf=false",
  "core.safecrlf=false",
  "core.fsync=none",
  "protocol.allow=never",
  "gc.auto=0",
  "maintenance.auto=false",
  "advice.addEmbeddedRepo=false",
  "color.ui=false",
].flatMap((setting) => ["-c", setting]);

interface RunOptions {
  env: Record<string, string>;
  extendEnv: boolean;
  timeoutMs: number;
  input?: string;
  /** Stops git (SIGTERM) when the job no longer wants its result. */
  signal?: AbortSignal | undefined;
}

export async function run(args: string[], cwd: string, opts: RunOptions): Promise<string> {
  const verbOf = () => args.find((a, i) => !a.startsWith("-") && args[i - 1] !== "-c") ?? "";
  if (opts.signal?.aborted) throw new RetryableError("GIT_STOPPED", `git ${verbOf()} was not started: the job was stopped`);
  // Through setpriv where installed: a git the worker started dies with it, instead of writing on
  // into a directory the worker's next life has swept.
  const [bin, argv] = withParentDeath("git", args);
  const result = await execa(bin, argv, {
    cwd,
    env: opts.env,
    extendEnv: opts.extendEnv,
    ...(opts.input === undefined ? { stdin: "ignore" as const } : { input: opts.input }),
    timeout: opts.timeoutMs,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    reject: false,
    stripFinalNewline: true,
  });
  if (result.isCanceled) throw new RetryableError("GIT_STOPPED", `git ${verbOf()} was stopped: the job was stopped`);
  if (result.exitCode !== 0 || result.timedOut) {
    const why = result.timedOut ? `timed out after ${opts.timeoutMs} ms` : (result.stderr || result.stdout).trim();
    throw new RetryableError("GIT_FAILED", `git ${verbOf()} failed: ${why}`);
  }
  return result.stdout;
}

/**
 * The worker's git before the agent runs: its own environment (its credentials fetch private
 * repositories), the system config and hooks off. Never used on a directory the agent has had.
 */
export async function git(args: string[], cwd: string, timeoutMs = DEFAULT_TIMEOUT_MS, signal?: AbortSignal): Promise<string> {
  return run([...GIT_SAFE, ...args], cwd, { env: GIT_ENV, extendEnv: true, timeoutMs, signal });
}

interface LockedRun {
  /** The work tree, when not the whole checkout. */
  workTree?: string;
  /** An index of its own, when not the git dir's. */
  index?: string;
  input?: string;
  /** More environment (a commit's identity). */
  env?: Record<string, string>;
}

/** The environment of the worker's git after the agent ran: no global or system config, an empty HOME, nothing of the worker's. */
export function cleanGitEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: home,
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_ATTR_NOSYSTEM: "1",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_TERMINAL_PROMPT: "0",
  };
}

/**
 * The worker's git on a checkout the agent has had: an explicit git dir and work tree (so nothing
 * is discovered in the checkout and no ownership check applies), no global or system config, an
 * empty HOME, and nothing of the worker's environment.
 */
export function lockedGit(gitDir: string, workTree: string, home: string, timeoutMs: number, signal?: AbortSignal) {
  const base = cleanGitEnv(home);
  return (args: string[], more: LockedRun = {}) => {
    const env = { ...base, ...(more.index === undefined ? {} : { GIT_INDEX_FILE: more.index }), ...more.env };
    const argv = [`--git-dir=${gitDir}`, `--work-tree=${more.workTree ?? workTree}`, ...GIT_LOCKED, ...args];
    return run(argv, home, { env, extendEnv: false, timeoutMs, signal, ...(more.input === undefined ? {} : { input: more.input }) });
  };
}
export type LockedGit = ReturnType<typeof lockedGit>;

/** The environment that makes `author` the author and committer of a commit. */
export function gitIdentity(author: { name: string; email: string }): Record<string, string> {
  return { GIT_AUTHOR_NAME: author.name, GIT_AUTHOR_EMAIL: author.email, GIT_COMMITTER_NAME: author.name, GIT_COMMITTER_EMAIL: author.email };
}

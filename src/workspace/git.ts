/**
 * Job workspaces: a fresh directory per job holding a shallow checkout of the job's
 * repository at its ref, the diff against that starting commit afterwards, and removal.
 *
 *   <workdir>/<jobId>-<random>/repo   the checkout the agent works in
 *   <workdir>/<jobId>-<random>/out    files the agent writes for us (last message)
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { PermanentError, RetryableError } from "../errors.js";
import { checkRepository, cloneSource } from "../repository.js";
import type { JobRequest } from "../schemas/job.js";

export interface WorkspaceOptions {
  workdir: string;
  gitBaseUrl: string;
  allowLocalRepos: boolean;
  keep: boolean;
  timeoutMs?: number;
}

export interface PreparedWorkspace {
  dir: string;
  repoDir: string;
  outDir: string;
  baseCommit: string;
}

/** Git never prompts, never runs a transport helper, never reads the worker's global config hooks. */
const GIT_ENV = {
  GIT_TERMINAL_PROMPT: "0",
  GIT_ASKPASS: "/bin/false",
  SSH_ASKPASS: "/bin/false",
  GIT_SSH_COMMAND: "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
  GIT_CONFIG_NOSYSTEM: "1",
};
// safe.directory: the agent may run as another user and own the checkout the worker diffs.
const GIT_SAFE = [
  "-c",
  "protocol.ext.allow=never",
  "-c",
  "core.hooksPath=/dev/null",
  "-c",
  "advice.detachedHead=false",
  "-c",
  "safe.directory=*",
];

export async function git(args: string[], cwd: string, timeoutMs = 600_000): Promise<string> {
  const result = await execa("git", [...GIT_SAFE, ...args], {
    cwd,
    env: GIT_ENV,
    stdin: "ignore",
    timeout: timeoutMs,
    reject: false,
    stripFinalNewline: true,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    const why = result.timedOut ? `timed out after ${timeoutMs} ms` : (result.stderr || result.stdout).trim();
    throw new RetryableError("GIT_FAILED", `git ${args[0]} failed: ${why}`);
  }
  return result.stdout;
}

export class WorkspaceManager {
  constructor(private readonly opts: WorkspaceOptions) {}

  async prepare(job: JobRequest): Promise<PreparedWorkspace> {
    const check = checkRepository(job.repository, this.opts.allowLocalRepos);
    if (!check.ok) throw new PermanentError("REPOSITORY_REFUSED", `repository ${check.reason}`);
    const root = resolve(this.opts.workdir);
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, `${job.id}-`));
    const repoDir = join(dir, "repo");
    const outDir = join(dir, "out");
    await mkdir(outDir);
    try {
      const source = cloneSource(job.repository, this.opts.gitBaseUrl);
      const ref = job.task.git?.startingBranch ?? "HEAD";
      const timeout = this.opts.timeoutMs;
      await git(["init", "--quiet", repoDir], dir, timeout);
      try {
        await git(["fetch", "--quiet", "--no-tags", "--depth", "1", "--", source, ref], repoDir, timeout);
      } catch (err) {
        // A ref that does not exist will not appear on a retry.
        if (/couldn't find remote ref|not our ref/i.test((err as Error).message)) {
          throw new PermanentError("REF_NOT_FOUND", `ref '${ref}' does not exist in ${job.repository}`, { cause: err });
        }
        throw err;
      }
      const branch = job.task.git?.newBranch ?? `moonmind/${job.id}`;
      await git(["checkout", "--quiet", "-B", branch, "FETCH_HEAD"], repoDir, timeout);
      const baseCommit = await git(["rev-parse", "HEAD"], repoDir, timeout);
      return { dir, repoDir, outDir, baseCommit };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Everything the agent changed since the starting commit, committed or not, as a binary-safe patch. */
  async diff(ws: PreparedWorkspace): Promise<string> {
    await git(["add", "--all"], ws.repoDir);
    const patch = await git(["diff", "--cached", "--binary", "--no-color", "--no-ext-diff", ws.baseCommit], ws.repoDir);
    return patch.length === 0 ? "" : `${patch}\n`;
  }

  async remove(dir: string): Promise<void> {
    if (this.opts.keep) return;
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Job workspaces: a fresh directory per job holding a shallow checkout of the job's
 * repository at its ref, the diff against that starting commit afterwards, and removal.
 *
 *   <workdir>/<jobId>-<random>/repo            the checkout the agent works in, with a .git of its own
 *   <workdir>/<jobId>-<random>/out             files the agent writes for us (last message)
 *   <workdir>/.worker/<jobId>-<random>/git     the worker's own git dir for that checkout
 *   <workdir>/.worker/<jobId>-<random>/home    an empty HOME for the worker's git
 *   <workdir>/.worker/<jobId>-<random>/owner   the worker process that made it (boot, PID namespace, pid, start)
 *
 * The agent is untrusted and owns its job's directory, so the worker's git never reads a file
 * the agent could have written: not `repo/.git` (config, hooks, include files, a `gitdir:` file),
 * not a global or system config. After the run the worker diffs the checkout through its own git
 * dir, kept where the agent cannot reach it (`.worker/` is the worker's, mode 0700), with a closed
 * environment and every repository-configurable executable switched off. A `.gitattributes` in
 * the checkout may still name filter and diff drivers; none is configured, so none runs.
 */
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { PermanentError } from "../errors.js";
import { checkRepository, cloneSource } from "../repository.js";
import { giveRepository, readLayout, type GitDirLayout } from "./git-files.js";
import { DEFAULT_TIMEOUT_MS, git, gitIdentity, lockedGit, type LockedGit } from "./git-run.js";
import { publishBranch, type PublishOptions } from "./publish.js";
import { readProc } from "../runtimes/procfs.js";
import { removeAgentTree } from "../runtimes/agent-files.js";
import type { JobRequest } from "../schemas/job.js";

export interface WorkspaceOptions {
  workdir: string;
  gitBaseUrl: string;
  allowLocalRepos: boolean;
  keep: boolean;
  timeoutMs?: number;
  /** Agents run as another user than the worker (MOONMIND_AGENT_USER): their directories are removed link-safely. */
  agentOwned?: boolean;
}

/**
 * Where a follow-up's checkout starts instead of the job's starting branch: the earlier run's
 * published branch, or the commit it started from with its changes committed on top.
 */
export interface WorkspaceStart {
  /** A branch or a commit id to fetch. */
  ref: string;
  /** What `ref` is, for an error that names it ("branch moonmind/a, published by run a"). */
  what: string;
  /** Patches committed on top in order, each with its commit message, before the agent sees the checkout. */
  changes: Array<{ patch: string; message: string }>;
  author: { name: string; email: string };
}

export interface PreparedWorkspace {
  /** The job's directory, handed to the agent. */
  dir: string;
  repoDir: string;
  outDir: string;
  baseCommit: string;
  /** The worker's own git dir for `repoDir`, outside `dir`. */
  gitDir: string;
  /** Where it was cloned from (credentials stripped), and so where a branch is pushed. */
  source: string;
  /** The branch the checkout is on (`task.git.newBranch`, default `moonmind/<jobId>`). */
  branch: string;
}


export interface SweepResult {
  /** Job directories removed, with the worker's state for them. */
  removed: string[];
  /** Job directories of runs that are not stale. */
  kept: string[];
}

/** Where the worker keeps what the agent must not touch, one directory per job directory. */
const WORKER_DIR = ".worker";
/** Names the worker process that made a job directory, in that directory's worker state. */
const OWNER_FILE = "owner";
/** `<jobId>-<random>` as mkdtemp names a job's directory; job ids are letters, digits, `_` and `-`. */
const JOB_DIR = /^([A-Za-z0-9_-]{1,128})-[A-Za-z0-9]{6}$/;
/** How deep repositories nested in repositories in the checkout are added as files. */
const MAX_NESTING = 4;
/**
 * A patch header that makes a path a gitlink it was not at the starting commit (a new path, or a
 * file or link turned into one). Header lines cannot be forged from content: in a patch every
 * content line starts with ' ', '+' or '-', binary data lines hold no spaces, and git quotes a
 * path with a newline in it.
 */
const ADDS_GITLINK = /^new (?:file )?mode 160000$/m;


/** A URL as the agent may see it: no password, and no user name where that is a token (http). */
function withoutCredentials(source: string): string {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return source; // a path or git@host:owner/name
  }
  const http = url.protocol === "https:" || url.protocol === "http:";
  if (!url.password && !(http && url.username)) return source;
  url.password = "";
  if (http) url.username = "";
  return url.toString();
}

const tampered = (why: string, cause?: unknown) =>
  new PermanentError("WORKSPACE_TAMPERED", `the agent's workspace cannot be diffed: ${why}`, cause === undefined ? {} : { cause });

export class WorkspaceManager {
  private readonly root: string;
  private readonly timeoutMs: number;
  private readonly removing = new Set<Promise<void>>();
  private bareLayout: Promise<GitDirLayout> | undefined;

  constructor(private readonly opts: WorkspaceOptions) {
    this.root = resolve(opts.workdir);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * A fresh job directory with the checkout in it. Whatever way it fails — including `signal`
   * (the job was stopped: git is stopped too) — the directory and the worker's state for it are
   * gone before it throws.
   */
  async prepare(job: JobRequest, signal?: AbortSignal, start?: WorkspaceStart): Promise<PreparedWorkspace> {
    const check = checkRepository(job.repository, this.opts.allowLocalRepos);
    if (!check.ok) throw new PermanentError("REPOSITORY_REFUSED", `repository ${check.reason}`);
    // The workdir stays traversable for an agent user; the worker's part of it does not.
    await mkdir(this.root, { recursive: true });
    await mkdir(join(this.root, WORKER_DIR), { recursive: true, mode: 0o700 });
    await chmod(join(this.root, WORKER_DIR), 0o700);
    const dir = await mkdtemp(join(this.root, `${job.id}-`));
    const worker = this.workerDir(dir);
    const repoDir = join(dir, "repo");
    const outDir = join(dir, "out");
    const gitDir = join(worker, "git");
    try {
      await mkdir(join(worker, "home"), { recursive: true, mode: 0o700 });
      const owner = await thisProcess();
      if (owner) await writeFile(join(worker, OWNER_FILE), owner, { mode: 0o600 });
      await mkdir(repoDir);
      await mkdir(outDir);
      const source = cloneSource(job.repository, this.opts.gitBaseUrl);
      const ref = start?.ref ?? job.task.git?.startingBranch ?? "HEAD";
      const branch = job.task.git?.newBranch ?? `moonmind/${job.id}`;
      const t = this.timeoutMs;
      const step = (args: string[], cwd: string) => git(args, cwd, t, signal);
      // The worker's git dir, and the checkout through it.
      await this.initBare(gitDir, (args) => step(args, worker));
      try {
          // The fetched objects kept as their pack, however few: the agent's copy is then two files.
        await step([`--git-dir=${gitDir}`, "-c", "fetch.unpackLimit=1", "fetch", "--quiet", "--no-tags", "--depth", "1", "--", source, ref], worker);
      } catch (err) {
        // A ref that does not exist will not appear on a retry.
        if (/couldn't find remote ref|not our ref|upload-pack: not our ref|no such remote ref/i.test((err as Error).message)) {
          const what = start ? `${start.what} is no longer in ${job.repository}` : `ref '${ref}' does not exist in ${job.repository}`;
          throw new PermanentError("REF_NOT_FOUND", what, { cause: err });
        }
        throw err;
      }
      await step([`--git-dir=${gitDir}`, `--work-tree=${repoDir}`, "checkout", "--quiet", "-B", branch, "FETCH_HEAD"], worker);
      if (start && start.changes.length > 0) await this.commitChanges(gitDir, repoDir, join(worker, "home"), start, signal);
      // The commit checked out, as the worker's own git dir holds the branch (a git run costs the
      // worker a fork of itself; rev-parse only where the ref is not a plain file).
      const loose = await readFile(join(gitDir, "refs", "heads", ...branch.split("/")), "utf8").catch(() => "");
      const baseCommit = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.exec(loose.trim())?.[0] ?? (await step([`--git-dir=${gitDir}`, "rev-parse", "HEAD"], worker));
      await giveRepository(gitDir, join(repoDir, ".git"), branch, baseCommit, withoutCredentials(source));
      return { dir, repoDir, outDir, baseCommit, gitDir, source: withoutCredentials(source), branch };
    } catch (err) {
      await this.removeNow(dir);
      throw err;
    }
  }

  /**
   * A follow-up's earlier results, committed in order on the checkout's branch by the worker's git
   * (locked down: the patches are agents' work), before the agent has the checkout.
   */
  private async commitChanges(gitDir: string, repoDir: string, home: string, start: WorkspaceStart, signal?: AbortSignal): Promise<void> {
    const locked = lockedGit(gitDir, repoDir, home, this.timeoutMs, signal);
    const identity = gitIdentity(start.author);
    for (const { patch, message } of start.changes) {
      try {
        // Into the index only (`--index` would write paths relative to git's cwd, not the work tree).
        await locked(["apply", "--cached", "--binary", "--whitespace=nowarn", "-"], { input: patch });
      } catch (err) {
        if ((err as { code?: unknown }).code === "GIT_STOPPED") throw err;
        const why = (err as Error).message.replace(/^git \S+ failed: /, "").split("\n").slice(0, 3).join(" ");
        throw new PermanentError("RESUME_FAILED", `${message.split("\n")[0]}: the patch does not apply to ${start.what}: ${why}`, { cause: err });
      }
      await locked(["commit", "--quiet", "--no-verify", "--allow-empty", "-F", "-"], { env: identity, input: message });
    }
    // The checkout as the last commit has it, deletions included.
    await locked(["reset", "--quiet", "--hard", "HEAD"]);
  }

  /**
   * An empty bare repository at `gitDir`, as `git init --bare` (no template: nothing in it is
   * used) makes one. Git makes the first, probing the file system; later ones are copies of what
   * it wrote, a process less a job.
   */
  private async initBare(gitDir: string, step: (args: string[]) => Promise<string>): Promise<void> {
    const first = !this.bareLayout;
    this.bareLayout ??= step(["init", "--quiet", "--bare", "--template=", gitDir]).then(() => readLayout(gitDir));
    const layout = await this.bareLayout.catch((err: unknown) => {
      this.bareLayout = undefined; // the next job asks git again
      throw err;
    });
    if (first) return;
    for (const d of layout.dirs) await mkdir(join(gitDir, d), { recursive: true });
    await Promise.all(layout.files.map(([name, content]) => writeFile(join(gitDir, name), content)));
  }

  /**
   * Everything the agent changed since the starting commit, committed or not, as a binary-safe
   * patch: the checkout's content against the starting commit, through the worker's own git dir.
   * The agent's `.git` is never part of it; links are recorded as links; a repository the agent
   * nested in the checkout goes in as its files, and nothing in it is read or run.
   */
  async diff(ws: PreparedWorkspace): Promise<string> {
    const worker = this.workerDir(ws.dir);
    const held = await this.hold(ws.repoDir, join(worker, "checkout"));
    try {
      const locked = lockedGit(ws.gitDir, held, join(worker, "home"), this.timeoutMs);
      const patchOf = () => locked(["diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", ws.baseCommit, "--"]);
      await locked(["add", "--all"]);
      let patch = await patchOf();
      // Nested repositories are rare: only a patch that adds a gitlink pays for unnesting them.
      if (ADDS_GITLINK.test(patch)) {
        await this.unnest(locked, held, join(worker, "nested.index"), ws.baseCommit);
        patch = await patchOf();
      }
      return patch.length === 0 ? "" : `${patch}\n`;
    } finally {
      // Back where the workspace is kept from; if the agent put something there meanwhile, removal takes both.
      await rename(held, ws.repoDir).catch(() => undefined);
    }
  }

  async remove(dir: string): Promise<void> {
    if (this.opts.keep) return;
    await this.removeNow(dir);
  }

  /**
   * Removes a finished run's directory in the background, so the slot the run held serves the
   * next job meanwhile (a checkout's removal is ~15 ms, the largest cost between one job's end
   * and the next one's claim). A crash before it is done leaves it to the start-up sweep.
   */
  removeLater(dir: string, onError: (err: unknown) => void): void {
    if (this.opts.keep) return;
    const removal: Promise<void> = this.removeNow(dir)
      .catch(onError)
      .finally(() => this.removing.delete(removal));
    this.removing.add(removal);
  }

  /** Settles once every removal `removeLater` started has ended. */
  async removals(): Promise<void> {
    while (this.removing.size > 0) await Promise.allSettled([...this.removing]);
  }

  /**
   * Removes the job directories (and the worker's state for them) of runs `isStale` names, e.g.
   * those a dead worker left behind with a copy of a login in `<dir>/home`, and those whose maker
   * is a worker process that is gone, whatever `isStale` says: a directory is never handed from
   * one process to another (a run taken over gets a fresh checkout), so once its maker is dead it
   * serves nobody — not even when the run it was made for is now held by a live worker. Anything
   * under the workdir that is not a job directory is left alone; a directory removed meanwhile is
   * no error.
   */
  async sweep(isStale: (jobId: string) => Promise<boolean>): Promise<SweepResult> {
    const names = new Set([...(await this.jobDirs(this.root)), ...(await this.jobDirs(join(this.root, WORKER_DIR)))]);
    const removed: string[] = [];
    const kept: string[] = [];
    for (const name of [...names].sort()) {
      const dir = join(this.root, name);
      if ((await this.makerGone(name)) || (await isStale(JOB_DIR.exec(name)![1]!))) {
        await this.removeNow(dir);
        removed.push(dir);
      } else kept.push(dir);
    }
    return { removed, kept };
  }

  /**
   * The process named in the directory's owner file is gone. Unknown (no file, another boot or
   * PID namespace, where its pid means nothing here) is not gone: `isStale` decides then.
   */
  private async makerGone(name: string): Promise<boolean> {
    const owner = (await readFile(join(this.root, WORKER_DIR, name, OWNER_FILE), "utf8").catch(() => "")).trim();
    const m = /^(\S+) (\d+) (\d+)$/.exec(owner);
    if (!m) return false;
    const here = await processScope();
    if (!here || here !== m[1]) return false;
    return (await startTime(Number(m[2]))) !== m[3];
  }

  private workerDir(dir: string): string {
    return join(this.root, WORKER_DIR, basename(dir));
  }

  private async removeNow(dir: string): Promise<void> {
    // Agents run as another user: removed without following a link an outliving agent could swap in.
    const remove = (path: string) => (this.opts.agentOwned ? removeAgentTree(path) : rm(path, { recursive: true, force: true, maxRetries: 3 }));
    await remove(dir);
    await remove(this.workerDir(dir));
  }

  /** Names of the real directories (not links) under `parent` that are named like a job's. */
  private async jobDirs(parent: string): Promise<string[]> {
    const entries = await readdir(parent, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
    return entries.filter((e) => e.isDirectory() && JOB_DIR.test(e.name)).map((e) => e.name);
  }

  /**
   * Moves the checkout into the worker's own directory, where the agent can no longer swap it
   * for a link to somewhere else, and checks it is the directory it was.
   */
  private async hold(repoDir: string, held: string): Promise<string> {
    const already = await lstat(held).catch(() => undefined);
    if (already?.isDirectory()) return held; // an earlier diff kept it
    try {
      await rename(repoDir, held);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw tampered("its checkout is gone", err);
      throw err;
    }
    if (!(await lstat(held)).isDirectory()) throw tampered("its checkout was replaced by something that is not a directory");
    return held;
  }

  /**
   * `git add` records a repository nested in the checkout as a gitlink to a commit nobody else
   * has; one the agent made (not a submodule of the starting commit) is added as its files instead,
   * indexed through the worker's git dir with the nested directory as work tree, so its own `.git`
   * is skipped like the checkout's. Repositories nested in those follow, a few levels deep.
   */
  private async unnest(locked: LockedGit, held: string, index: string, baseCommit: string): Promise<void> {
    try {
      for (let level = 0; level < MAX_NESTING; level++) {
        const raw = await locked(["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", baseCommit, "--"]);
        const fields = raw.split("\0");
        const nested: string[] = [];
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const [oldMode, newMode] = fields[i]!.slice(1).split(" ");
          if (newMode === "160000" && oldMode !== "160000") nested.push(fields[i + 1]!);
        }
        if (nested.length === 0) return;
        for (const path of nested) {
          const workTree = join(held, path);
          await this.realDirectory(held, path);
          await rm(index, { force: true });
          await locked(["add", "--all"], { workTree, index });
          const entries = (await locked(["ls-files", "--stage", "-z"], { workTree, index })).split("\0").filter(Boolean);
          // "<mode> <object> <stage>\t<path>", re-rooted at the nested directory.
          const input = entries.map((e) => e.replace("\t", `\t${path}/`)).join("\0");
          await locked(["update-index", "--force-remove", "--", path]);
          if (input) await locked(["update-index", "-z", "--index-info"], { input: `${input}\0` });
        }
      }
    } finally {
      await rm(index, { force: true });
    }
  }

  /** Commits what `diff` staged and pushes it (./publish.ts). */
  async publishBranch(ws: PreparedWorkspace, opts: PublishOptions): Promise<{ branch: string; commit: string; remote: string; base: string }> {
    return publishBranch(ws, join(this.workerDir(ws.dir), "home"), opts, this.timeoutMs);
  }

  /** Refuses a path under the held checkout that passes through a link. */
  private async realDirectory(held: string, path: string): Promise<void> {
    let at = held;
    for (const part of path.split("/")) {
      at = join(at, part);
      const stat = await lstat(at).catch(() => undefined);
      if (!stat?.isDirectory()) throw tampered(`'${path}' changed while it was being diffed`);
    }
  }
}

/** Where a pid means one process: this boot and this PID namespace (`<boot id>:<pid ns>`). Constant for a process. */
let scope: Promise<string | undefined> | undefined;
function processScope(): Promise<string | undefined> {
  scope ??= (async () => {
    const boot = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim();
    const ns = await readlink("/proc/self/ns/pid").catch(() => "");
    return boot && ns ? `${boot}:${ns}` : undefined;
  })();
  return scope;
}

/** A live process's start time (clock ticks since boot: with the pid it names one life); undefined when gone. */
async function startTime(pid: number): Promise<string | undefined> {
  const p = await readProc(pid);
  return p && p.state !== "Z" && p.state !== "X" ? p.start : undefined;
}

/** This worker process, for the owner file: `<scope> <pid> <start time>`; undefined where /proc cannot say. */
let self: Promise<string | undefined> | undefined;
function thisProcess(): Promise<string | undefined> {
  self ??= Promise.all([processScope(), startTime(process.pid)]).then(([s, start]) => (s && start ? `${s} ${process.pid} ${start}` : undefined));
  return self;
}

/**
 * A hostile agent's checkout: nothing the agent writes into its repository (git config, hooks,
 * filter and diff drivers, include files, a `.git` pointing elsewhere, a swapped workspace) runs
 * or is read when the worker diffs it afterwards, and the patch still holds the agent's real work.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, lchown, lstat, mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRequest } from "../../src/schemas/job.js";
import { WorkspaceManager, type PreparedWorkspace } from "../../src/workspace/git.js";
import { makeRepo } from "../helpers/stack.js";

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let dir: string;
let bare: string;
let manager: WorkspaceManager;

const git = (cwd: string, ...args: string[]) =>
  // The agent's own git: it owns its checkout, so no ownership check stands in its way.
  execFileSync("git", ["-c", "safe.directory=*", "-c", "user.name=agent", "-c", "user.email=agent@example.com", ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();

const job = (repository: string): JobRequest => ({
  id: "hostile-job",
  type: "task",
  repository,
  targetRuntime: "codex",
  maxAttempts: 3,
  task: { instructions: "x" },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-hostile-"));
  // The agent user must be able to reach its workspace under the temp dir.
  await chmod(dir, 0o755);
  const source = await makeRepo(join(dir, "source"));
  bare = join(dir, "widgets.git");
  git(dir, "clone", "-q", "--bare", source, bare);
  manager = new WorkspaceManager({ workdir: join(dir, "work"), gitBaseUrl: `file://${dir}`, allowLocalRepos: true, keep: false });
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/**
 * Where the worker runs as root, what the agent wrote is the agent user's (as job-effects hands the
 * job's directory over): links themselves, never their targets.
 */
async function handToAgent(path: string): Promise<void> {
  if (!asRoot) return;
  await lchown(path, NOBODY, NOBODY);
  if ((await lstat(path)).isDirectory()) for (const entry of await readdir(path)) await handToAgent(join(path, entry));
}

/** A prepared workspace, with a directory for the markers the agent's planted commands would leave. */
async function hostile(): Promise<{ ws: PreparedWorkspace; markers: string; touch: (name: string) => string }> {
  const ws = await manager.prepare(job(bare));
  await handToAgent(ws.dir);
  const markers = await mkdtemp(join(dir, "markers-"));
  return { ws, markers, touch: (name) => `touch '${join(markers, name)}'` };
}

/** The agent's honest work: a new file and a changed one. */
async function work(ws: PreparedWorkspace): Promise<void> {
  await writeFile(join(ws.repoDir, "agent.txt"), "agent work\n");
  await writeFile(join(ws.repoDir, "README.md"), "# changed\n");
}

const setConfig = (ws: PreparedWorkspace, key: string, value: string, file = join(ws.repoDir, ".git", "config")) =>
  git(ws.repoDir, "config", "--file", file, key, value);

async function hook(path: string, command: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\n${command}\n`);
  await chmod(path, 0o755);
}

/** Diffs, then checks that no marker appeared and the patch holds the agent's work. */
async function expectHarmless(ws: PreparedWorkspace, markers: string): Promise<string> {
  await handToAgent(ws.dir);
  const patch = await manager.diff(ws).catch((err: unknown) => err);
  expect(await readdir(markers), "commands the agent planted ran").toEqual([]);
  expect(patch).toBeTypeOf("string");
  const text = patch as string;
  expect(text).toContain("+++ b/agent.txt");
  expect(text).toContain("+agent work");
  expect(text).toContain("+# changed");
  expect(text).not.toMatch(/^\+\+\+ b\/(?:.*\/)?\.git\//m);
  await manager.remove(ws.dir);
  return text;
}

describe("a hostile agent's repository", () => {
  it("core.fsmonitor does not run", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    setConfig(ws, "core.fsmonitor", touch("fsmonitor"));
    setConfig(ws, "core.untrackedCache", "true");
    await expectHarmless(ws, markers);
  });

  it("clean and process filter drivers named by .gitattributes do not run", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    await writeFile(join(ws.repoDir, ".gitattributes"), "* filter=x\nREADME.md filter=y\n");
    setConfig(ws, "filter.x.clean", `${touch("clean")}; cat`);
    setConfig(ws, "filter.x.smudge", `${touch("smudge")}; cat`);
    setConfig(ws, "filter.y.process", touch("process"));
    setConfig(ws, "filter.y.required", "true");
    const patch = await expectHarmless(ws, markers);
    expect(patch).toContain("+* filter=x");
  });

  it("external diff and textconv drivers do not run", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    await writeFile(join(ws.repoDir, ".gitattributes"), "* diff=x\n");
    setConfig(ws, "diff.external", touch("diff-external"));
    setConfig(ws, "diff.x.command", touch("diff-command"));
    setConfig(ws, "diff.x.textconv", `${touch("textconv")}; cat`);
    setConfig(ws, "diff.x.binary", "true");
    await expectHarmless(ws, markers);
  });

  it("hooks, in .git/hooks or a core.hooksPath of its own, do not run", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    const own = join(ws.repoDir, ".git", "my-hooks");
    await mkdir(own);
    for (const name of ["pre-commit", "post-index-change", "reference-transaction", "post-checkout", "pre-auto-gc", "fsmonitor-watchman"]) {
      await hook(join(ws.repoDir, ".git", "hooks", name), touch(`hooks-${name}`));
      await hook(join(own, name), touch(`hooks-path-${name}`));
    }
    setConfig(ws, "core.hooksPath", own);
    await expectHarmless(ws, markers);
  });

  it("include.path and includeIf files are not read", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    const included = join(ws.repoDir, ".git", "evil.cfg");
    await writeFile(included, "");
    setConfig(ws, "core.fsmonitor", touch("include-fsmonitor"), included);
    setConfig(ws, "filter.x.clean", `${touch("include-clean")}; cat`, included);
    await writeFile(join(ws.repoDir, ".gitattributes"), "* filter=x\n");
    setConfig(ws, "include.path", included);
    setConfig(ws, "includeIf.gitdir:/.path", included);
    await expectHarmless(ws, markers);
  });

  it("pagers, editors, aliases, ssh and credential commands and safe.directory do not run", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    setConfig(ws, "core.pager", touch("pager"));
    setConfig(ws, "pager.diff", touch("pager-diff"));
    setConfig(ws, "core.editor", touch("editor"));
    setConfig(ws, "sequence.editor", touch("sequence-editor"));
    setConfig(ws, "core.sshCommand", touch("ssh"));
    setConfig(ws, "core.askPass", touch("askpass"));
    setConfig(ws, "credential.helper", `!${touch("credential")}`);
    setConfig(ws, "gpg.program", touch("gpg"));
    setConfig(ws, "alias.add", `!${touch("alias-add")}`);
    setConfig(ws, "alias.diff", `!${touch("alias-diff")}`);
    setConfig(ws, "safe.directory", "*");
    await expectHarmless(ws, markers);
  });

  it("core.worktree cannot point the worker's diff at another directory", async () => {
    const { ws, markers } = await hostile();
    await work(ws);
    const secrets = await makeRepo(join(dir, "secrets-worktree"));
    await writeFile(join(secrets, "secret.txt"), "TOP SECRET\n");
    setConfig(ws, "core.worktree", secrets);
    const patch = await expectHarmless(ws, markers);
    expect(patch).not.toContain("TOP SECRET");
  });

  for (const shape of ["gitdir: file", "symlink"] as const) {
    it(`a .git replaced by a ${shape} pointing elsewhere is not followed`, async () => {
      const { ws, markers, touch } = await hostile();
      await work(ws);
      // A repository of the agent's making, outside the checkout, sharing its history so a diff would work.
      const elsewhere = join(ws.dir, "elsewhere.git");
      await rename(join(ws.repoDir, ".git"), elsewhere);
      setConfig(ws, "core.fsmonitor", touch("gitdir-fsmonitor"), join(elsewhere, "config"));
      setConfig(ws, "filter.x.clean", `${touch("gitdir-clean")}; cat`, join(elsewhere, "config"));
      await writeFile(join(ws.repoDir, ".gitattributes"), "* filter=x\n");
      if (shape === "symlink") await symlink(elsewhere, join(ws.repoDir, ".git"));
      else await writeFile(join(ws.repoDir, ".git"), `gitdir: ${elsewhere}\n`);
      await expectHarmless(ws, markers);
    });
  }

  it("a nested repository with a hostile config of its own runs nothing and goes in as its files", async () => {
    const { ws, markers, touch } = await hostile();
    await work(ws);
    const nested = join(ws.repoDir, "vendor", "lib");
    const deeper = join(nested, "deeper");
    for (const [n, repo] of [nested, deeper].entries()) {
      await mkdir(repo, { recursive: true });
      git(repo, "init", "-q");
      await writeFile(join(repo, `${n === 0 ? "lib" : "deep"}.txt`), "nested work\n");
    }
    git(deeper, "add", ".");
    git(deeper, "commit", "-q", "-m", "deeper");
    git(nested, "add", "lib.txt");
    git(nested, "commit", "-q", "-m", "lib");
    // The agent's own commands are done; what it leaves for the worker:
    await writeFile(join(nested, ".gitattributes"), "* filter=x\n");
    for (const [n, repo] of [nested, deeper].entries()) {
      setConfig(ws, "core.fsmonitor", touch(`nested-fsmonitor-${n}`), join(repo, ".git", "config"));
      setConfig(ws, "filter.x.clean", `${touch(`nested-clean-${n}`)}; cat`, join(repo, ".git", "config"));
      await hook(join(repo, ".git", "hooks", "post-index-change"), touch(`nested-hook-${n}`));
    }
    const patch = await expectHarmless(ws, markers);
    expect(patch).toContain("+++ b/vendor/lib/lib.txt");
    expect(patch).toContain("+++ b/vendor/lib/.gitattributes");
    expect(patch).toContain("+++ b/vendor/lib/deeper/deep.txt");
    expect(patch).not.toContain("Subproject commit");
    // It applies to the starting commit.
    const check = await mkdtemp(join(dir, "apply-"));
    git(check, "clone", "-q", bare, ".");
    await writeFile(join(check, "p.patch"), patch);
    git(check, "apply", "--check", "p.patch");
  });

  it("records symlinks as links, never their targets", async () => {
    const { ws, markers } = await hostile();
    await work(ws);
    const secrets = await mkdtemp(join(dir, "secrets-"));
    await writeFile(join(secrets, "secret.txt"), "TOP SECRET\n");
    await symlink(join(secrets, "secret.txt"), join(ws.repoDir, "file-link"));
    await symlink(secrets, join(ws.repoDir, "dir-link"));
    const patch = await expectHarmless(ws, markers);
    expect(patch).toContain("new file mode 120000");
    expect(patch).toContain("+++ b/file-link");
    expect(patch).toContain("+++ b/dir-link");
    expect(patch).not.toContain("TOP SECRET");
  });

  it("covers commits the agent made in its own repository and leaves its .git out", async () => {
    const { ws, markers } = await hostile();
    await work(ws);
    git(ws.repoDir, "add", "agent.txt");
    git(ws.repoDir, "commit", "-q", "-m", "agent commit");
    await expectHarmless(ws, markers);
  });

  it("refuses a workspace the agent swapped for a link to somewhere else", async () => {
    const { ws, markers } = await hostile();
    await work(ws);
    const secrets = await mkdtemp(join(dir, "secrets-"));
    await writeFile(join(secrets, "secret.txt"), "TOP SECRET\n");
    await rename(ws.repoDir, `${ws.repoDir}.moved`);
    await symlink(secrets, ws.repoDir);
    await handToAgent(ws.dir);
    const result = await manager.diff(ws).catch((err: unknown) => err);
    expect(await readdir(markers)).toEqual([]);
    expect(result).toMatchObject({ name: "PermanentError", code: "WORKSPACE_TAMPERED" });
    await manager.remove(ws.dir);
    expect(existsSync(ws.dir)).toBe(false);
  });
});

describe("the worker's own git dir", () => {
  it("is outside the job's directory, configures no driver, and diffs a checkout another user owns", async () => {
    const { ws, markers } = await hostile();
    expect(ws.gitDir.startsWith(`${ws.dir}/`)).toBe(false);
    const config = git(dir, "config", "--file", join(ws.gitDir, "config"), "--list");
    expect(config).not.toMatch(/^(?:filter|diff|include|includeif|core\.(?:fsmonitor|hookspath|worktree|pager|sshcommand))\./im);
    await work(ws);
    // No safe.directory is needed: an explicit git dir is not subject to the ownership check.
    await expectHarmless(ws, markers);
  });

  it.runIf(asRoot)("cannot be written by the agent user, who can still work in its own repository", async () => {
    const { ws } = await hostile();
    expect(ws.gitDir).toEqual(expect.any(String));
    const asAgent = (script: string) =>
      execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script], {
        cwd: ws.repoDir,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: ws.dir },
        stdio: "pipe",
        encoding: "utf8",
      });
    expect(() => asAgent(`echo '[core] fsmonitor = true' >> '${join(ws.gitDir, "config")}'`)).toThrow();
    expect(() => asAgent(`ls '${ws.gitDir}'`)).toThrow();
    asAgent("echo agent work > agent.txt && echo '# changed' > README.md && git add agent.txt && git -c user.name=a -c user.email=a@b commit -qm work");
    expect(asAgent("git status --porcelain")).toBe(" M README.md\n");
    const patch = await manager.diff(ws);
    expect(patch).toContain("+agent work");
    expect(patch).toContain("+# changed");
    await manager.remove(ws.dir);
  });
});

/** Job workspaces against real git: checkout at a ref, the diff, refusal and clean-up. */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRequest } from "../../src/schemas/job.js";
import { configValue } from "../../src/workspace/git-files.js";
import { WorkspaceManager } from "../../src/workspace/git.js";
import { makeRepo } from "../helpers/stack.js";

let dir: string;
let repo: string;
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { cwd, encoding: "utf8" }).trim();

const job = (repository: string, ref?: string): JobRequest => ({
  id: "ws-job",
  type: "task",
  repository,
  targetRuntime: "codex",
  maxAttempts: 3,
  task: { instructions: "x", ...(ref ? { git: { startingBranch: ref } } : {}) },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-ws-"));
  // A "forge" directory so that owner/name resolves against a base URL like a real host.
  repo = await makeRepo(join(dir, "forge", "acme", "widgets"));
  git(repo, "checkout", "-q", "-b", "release");
  await writeFile(join(repo, "RELEASE.md"), "v1\n");
  git(repo, "add", ".");
  git(repo, "commit", "-q", "-m", "release");
  git(repo, "checkout", "-q", "main");
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const manager = (over: Partial<ConstructorParameters<typeof WorkspaceManager>[0]> = {}) =>
  new WorkspaceManager({ workdir: join(dir, "work"), gitBaseUrl: `file://${join(dir, "forge")}`, allowLocalRepos: true, keep: false, ...over });

async function objectFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe("workspaces", () => {
  it("writes a config value git reads back unchanged, whatever characters a source holds", async () => {
    const file = join(dir, "quoting.config");
    for (const value of ["/srv/git/plain", 'a "quoted" path\\with\\backslashes', "tab\there; # not a comment", " spaced ", "line\nbreak"]) {
      await writeFile(file, `[remote "origin"]\n\turl = ${configValue(value)}\n`);
      expect(execFileSync("git", ["config", "--file", file, "remote.origin.url"], { encoding: "utf8" }).slice(0, -1)).toBe(value);
    }
  });

  it("resolves owner/name against the base URL and checks out the default branch", async () => {
    const m = manager({ allowLocalRepos: false });
    const ws = await m.prepare(job("acme/widgets"));
    expect(await readFile(join(ws.repoDir, "README.md"), "utf8")).toBe("# sample\n");
    expect(existsSync(join(ws.repoDir, "RELEASE.md"))).toBe(false);
    expect(ws.baseCommit).toBe(git(repo, "rev-parse", "main"));
    await m.remove(ws.dir);
    expect(existsSync(ws.dir)).toBe(false);
  });

  it("checks out the job's ref", async () => {
    const m = manager();
    const ws = await m.prepare(job(repo, "release"));
    expect(await readFile(join(ws.repoDir, "RELEASE.md"), "utf8")).toBe("v1\n");
    expect(ws.baseCommit).toBe(git(repo, "rev-parse", "release"));
    await m.remove(ws.dir);
  });

  it("gives the agent a repository of its own, and keeps the worker's git dir out of the job's directory", async () => {
    const m = manager();
    const ws = await m.prepare(job(repo, "release"));
    expect(git(ws.repoDir, "rev-parse", "--abbrev-ref", "HEAD")).toBe("moonmind/ws-job");
    expect(git(ws.repoDir, "rev-parse", "HEAD")).toBe(ws.baseCommit);
    expect(git(ws.repoDir, "status", "--porcelain")).toBe("");
    expect(git(ws.repoDir, "remote", "get-url", "origin")).toBe(repo);
    // Whole and shallow: every object the checkout needs, copied rather than linked to the worker's.
    expect(git(ws.repoDir, "rev-parse", "--is-shallow-repository")).toBe("true");
    git(ws.repoDir, "fsck", "--strict", "--no-dangling");
    const agentObjects = await objectFiles(join(ws.repoDir, ".git", "objects"));
    expect(agentObjects.length).toBeGreaterThan(0);
    for (const file of agentObjects) expect((await stat(file)).nlink, file).toBe(1);
    // It works like a clone: the agent commits on its branch and fetches from origin.
    await writeFile(join(ws.repoDir, "agent.txt"), "x\n");
    git(ws.repoDir, "add", "agent.txt");
    git(ws.repoDir, "commit", "-q", "-m", "agent");
    git(ws.repoDir, "fetch", "-q", "--depth", "1", "origin", "main");
    expect(ws.gitDir.startsWith(`${ws.dir}/`)).toBe(false);
    expect(git(ws.gitDir, "--git-dir=.", "rev-parse", "HEAD")).toBe(ws.baseCommit);
    await m.remove(ws.dir);
    expect(existsSync(ws.dir)).toBe(false);
    expect(existsSync(ws.gitDir)).toBe(false);
  });

  it("diffs committed and uncommitted changes, binary included, against the starting commit", async () => {
    const m = manager();
    const ws = await m.prepare(job(repo));
    expect(await m.diff(ws)).toBe("");
    await writeFile(join(ws.repoDir, "a.txt"), "committed\n");
    git(ws.repoDir, "add", "a.txt");
    git(ws.repoDir, "commit", "-q", "-m", "agent commit");
    await writeFile(join(ws.repoDir, "b.bin"), Buffer.from([0, 1, 2, 255]));
    await writeFile(join(ws.repoDir, "README.md"), "# changed\n");
    const patch = await m.diff(ws);
    expect(patch).toContain("+++ b/a.txt");
    expect(patch).toContain("GIT binary patch");
    expect(patch).toContain("+# changed");
    // The patch applies cleanly to the starting commit.
    const check = await mkdtemp(join(dir, "apply-"));
    git(check, "clone", "-q", repo, ".");
    await writeFile(join(check, "p.patch"), patch);
    git(check, "apply", "--check", "p.patch");
    await m.remove(ws.dir);
  });

  it("fails a missing ref permanently", async () => {
    await expect(manager().prepare(job(repo, "no-such-branch"))).rejects.toMatchObject({ name: "PermanentError", code: "REF_NOT_FOUND" });
  });

  it("refuses a local repository unless allowed, before touching the disk", async () => {
    await expect(manager({ allowLocalRepos: false }).prepare(job(repo))).rejects.toMatchObject({
      name: "PermanentError",
      message: expect.stringMatching(/MOONMIND_ALLOW_LOCAL_REPOS=true/),
    });
  });

  it("keeps the directory when asked to", async () => {
    const m = manager({ keep: true });
    const ws = await m.prepare(job(repo));
    await m.remove(ws.dir);
    expect(existsSync(ws.dir)).toBe(true);
  });

  it("never prompts for credentials: an unreachable remote fails fast and retryably", async () => {
    await expect(manager({ gitBaseUrl: "http://127.0.0.1:9" }).prepare(job("acme/widgets"))).rejects.toMatchObject({
      name: "RetryableError",
      code: "GIT_FAILED",
    });
  });
});

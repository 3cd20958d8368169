/** Sweeping the workspaces a dead worker left behind: stale job directories go, everything else stays. */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRequest } from "../../src/schemas/job.js";
import { WorkspaceManager } from "../../src/workspace/git.js";
import { makeRepo } from "../helpers/stack.js";

let dir: string;
let repo: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-sweep-"));
  repo = await makeRepo(join(dir, "source"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const manager = (workdir: string) => new WorkspaceManager({ workdir, gitBaseUrl: "file:///nowhere", allowLocalRepos: true, keep: false });

const job = (id: string): JobRequest => ({
  id,
  type: "task",
  repository: repo,
  targetRuntime: "codex",
  maxAttempts: 3,
  task: { instructions: "x" },
});

/** A job directory as a worker that died mid-run leaves it: a private home with a login in it. */
async function leftBehind(workdir: string, jobId: string): Promise<string> {
  await mkdir(workdir, { recursive: true });
  const jobDir = await mkdtemp(join(workdir, `${jobId}-`));
  await mkdir(join(jobDir, "home"), { recursive: true });
  await writeFile(join(jobDir, "home", "auth.json"), "{}");
  await mkdir(join(workdir, ".worker", basename(jobDir), "git"), { recursive: true });
  return jobDir;
}

describe("sweeping workspaces", () => {
  it("removes the stale runs' directories and the worker's state for them, keeps the rest", async () => {
    const workdir = join(dir, "work-stale");
    const m = manager(workdir);
    const prepared = await m.prepare(job("job-with-dash_1"));
    await mkdir(join(prepared.dir, "home"));
    await writeFile(join(prepared.dir, "home", "auth.json"), "{}");
    const stale = await leftBehind(workdir, "a");
    const live = await leftBehind(workdir, "live-2");
    // The same job twice (an earlier attempt's directory, never removed).
    const again = await leftBehind(workdir, "a");

    const asked: string[] = [];
    const result = await m.sweep(async (jobId) => {
      asked.push(jobId);
      return jobId !== "live-2";
    });

    expect(asked.sort()).toEqual(["a", "a", "job-with-dash_1", "live-2"]);
    expect(result.removed.sort()).toEqual([prepared.dir, stale, again].sort());
    expect(result.kept).toEqual([live]);
    for (const gone of [prepared.dir, stale, again]) {
      expect(existsSync(gone)).toBe(false);
      expect(existsSync(join(workdir, ".worker", basename(gone)))).toBe(false);
    }
    expect(existsSync(join(live, "home", "auth.json"))).toBe(true);
    expect(existsSync(join(workdir, ".worker", basename(live)))).toBe(true);
  });

  it("leaves alone anything that is not a job directory, and never follows a link", async () => {
    const workdir = join(dir, "work-other");
    await mkdir(join(workdir, ".worker"), { recursive: true });
    const outside = await mkdtemp(join(dir, "outside-"));
    await writeFile(join(outside, "precious.txt"), "keep me\n");
    await writeFile(join(workdir, "notes-ABCDEF"), "a file named like a job directory\n");
    await mkdir(join(workdir, "short-abc"));
    await mkdir(join(workdir, "has.dot-ABCDEF"));
    await mkdir(join(workdir, "nosuffix"));
    await mkdir(join(workdir, "-ABCDEF"));
    await symlink(outside, join(workdir, "linked-ABCDEF"));
    await symlink(outside, join(workdir, ".worker", "linked2-ABCDEF"));

    const asked: string[] = [];
    const result = await manager(workdir).sweep(async (jobId) => {
      asked.push(jobId);
      return true;
    });

    expect(asked).toEqual([]);
    expect(result).toEqual({ removed: [], kept: [] });
    expect((await readdir(workdir)).sort()).toEqual(
      [".worker", "-ABCDEF", "has.dot-ABCDEF", "linked-ABCDEF", "nosuffix", "notes-ABCDEF", "short-abc"].sort(),
    );
    expect(existsSync(join(outside, "precious.txt"))).toBe(true);
  });

  it("removes the worker's state of a stale run whose job directory is already gone", async () => {
    const workdir = join(dir, "work-orphan");
    const jobDir = await leftBehind(workdir, "orphan");
    await rm(jobDir, { recursive: true });
    const result = await manager(workdir).sweep(async () => true);
    expect(result.removed).toEqual([jobDir]);
    expect(await readdir(join(workdir, ".worker"))).toEqual([]);
  });

  it("tolerates a directory removed while it sweeps", async () => {
    const workdir = join(dir, "work-race");
    const first = await leftBehind(workdir, "race");
    const result = await manager(workdir).sweep(async () => {
      // Someone else (the run's own clean-up finishing late) got there first.
      await rm(first, { recursive: true, force: true });
      await rm(join(workdir, ".worker", basename(first)), { recursive: true, force: true });
      return true;
    });
    expect(result.removed).toEqual([first]);
  });

  it("removes a directory whose maker is a dead worker process, even where its run is held by a live worker", async () => {
    // A killed worker restarts slower than another worker takes its run over: the record then
    // names a live holder, but the directory was the dead process's and nobody will use it.
    const workdir = join(dir, "work-maker");
    const script = join(dir, "prepare-and-exit.mts");
    await writeFile(
      script,
      `import { WorkspaceManager } from ${JSON.stringify(join(import.meta.dirname, "../../src/workspace/git.ts"))};\n` +
        `const m = new WorkspaceManager({ workdir: ${JSON.stringify(workdir)}, gitBaseUrl: "file:///nowhere", allowLocalRepos: true, keep: false });\n` +
        `const ws = await m.prepare(${JSON.stringify(job("taken-over"))});\n` +
        `process.stdout.write(ws.dir);\n`,
    );
    const deadOnes = execFileSync(process.execPath, ["--import", import.meta.resolve("tsx"), script], { encoding: "utf8" });
    const mine = await manager(workdir).prepare(job("held-here"));
    const result = await manager(workdir).sweep(async () => false);
    expect(result.removed).toEqual([deadOnes]);
    expect(existsSync(deadOnes)).toBe(false);
    expect(existsSync(join(workdir, ".worker", basename(deadOnes)))).toBe(false);
    // This process made the other one and lives: the run's holder decides, as before.
    expect(result.kept).toEqual([mine.dir]);
    expect(existsSync(mine.dir)).toBe(true);
  });

  it("finds nothing to do in a workdir that does not exist yet", async () => {
    expect(await manager(join(dir, "never-made")).sweep(async () => true)).toEqual({ removed: [], kept: [] });
  });
});

/**
 * What the worker reads of an agent's directories: a hostile agent leaves links to what the worker
 * can read and it cannot, FIFOs that would block a read for good, and link loops.
 */
import { execFileSync } from "node:child_process";
import { link, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAgentDir, readAgentFile, removeAgentTree, walkAgentFiles } from "../../src/runtimes/agent-files.js";
import { readSessionFiles } from "../../src/runtimes/session.js";

let root: string;
let home: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "agent-files-"));
  home = join(root, "home");
  await mkdir(join(home, "sessions", "2026", "12", "03"), { recursive: true });
  await writeFile(join(root, "worker-secret"), "NATS password of the worker\n");
  await writeFile(join(home, "sessions", "2026", "12", "03", "rollout-t-abc.jsonl"), '{"id":"abc"}\n');
  await symlink("/proc/self/environ", join(home, "sessions", "x-abc.jsonl"));
  await symlink(join(root, "worker-secret"), join(home, "sessions", "2026", "y-abc.jsonl"));
  execFileSync("mkfifo", [join(home, "sessions", "z-abc.jsonl")]);
  await symlink(".", join(home, "sessions", "loop"));
  await symlink(root, join(home, "sessions", "up"));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("reading an agent's files", () => {
  it("walks only real directories and lists only regular files: no link, FIFO or loop is followed", async () => {
    expect(await walkAgentFiles(home, "sessions", 3)).toEqual([join("sessions", "2026", "12", "03", "rollout-t-abc.jsonl")]);
  });

  it("reads a regular file, and refuses a link, a FIFO (at once) and a path through a linked directory", async () => {
    expect(await readAgentFile(home, join("sessions", "2026", "12", "03", "rollout-t-abc.jsonl"), 1_000)).toEqual({ kind: "file", data: Buffer.from('{"id":"abc"}\n') });
    expect(await readAgentFile(home, join("sessions", "x-abc.jsonl"), 1_000)).toEqual({ kind: "missing" });
    expect(await readAgentFile(home, join("sessions", "2026", "y-abc.jsonl"), 1_000)).toEqual({ kind: "missing" });
    expect(await readAgentFile(home, join("sessions", "z-abc.jsonl"), 1_000)).toEqual({ kind: "missing" });
    expect(await readAgentFile(home, join("sessions", "up", "worker-secret"), 1_000)).toEqual({ kind: "missing" });
    expect(await listAgentDir(home, join("sessions", "up"))).toEqual([]);
  });

  it("says a file is too big before reading it, and a session past its bound is not kept", async () => {
    await writeFile(join(home, "big.jsonl"), "x".repeat(2_000));
    expect(await readAgentFile(home, "big.jsonl", 1_000)).toEqual({ kind: "too-big", size: 2_000 });
    const links = [join("sessions", "x-abc.jsonl"), join("sessions", "z-abc.jsonl")];
    expect(await readSessionFiles(home, links)).toBeUndefined();
  });
});

describe("removing an agent's tree", () => {
  it("takes every name in it and nothing a link in it points at", async () => {
    const outside = join(root, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "keep"), "not the agent's");
    const tree = join(root, "tree");
    await mkdir(join(tree, "a", "b", "c"), { recursive: true });
    await writeFile(join(tree, "a", "b", "c", "f"), "x");
    await symlink(outside, join(tree, "a", "to-outside"));
    await symlink(join(outside, "keep"), join(tree, "keep-link"));
    execFileSync("mkfifo", [join(tree, "a", "fifo")]);
    await removeAgentTree(tree);
    expect(existsSync(tree)).toBe(false);
    expect(await readdir(outside)).toEqual(["keep"]);
    await removeAgentTree(tree); // gone already: nothing to do
  });

  it("refuses a second name of a file (a hard link) when reading", async () => {
    await writeFile(join(root, "secret-twice"), "worker's");
    await link(join(root, "secret-twice"), join(home, "hard.jsonl"));
    expect(await readAgentFile(home, "hard.jsonl", 1_000)).toEqual({ kind: "missing" });
  });
});

/**
 * The README's path, as a person runs it: `moonmind dev --stand-in` (what `npm start -- --stand-in`
 * runs) brings up nats-server, intake and a worker; `moonmind submit --wait` from another process
 * ends `succeeded`; Ctrl-C stops everything.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRepo } from "../helpers/stack.js";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
let dir: string;
let repo: string;
let dev: ChildProcess;
let devExit: Promise<number | null>;
let env: NodeJS.ProcessEnv;

const moonmind = (...args: string[]) => execa(process.execPath, [BIN, ...args], { env, reject: false, timeout: 60_000, stdin: "ignore" });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-dev-"));
  repo = await makeRepo(join(dir, "repo"));
  env = { ...process.env, MOONMIND_DATA_DIR: join(dir, "var"), MOONMIND_LOG_LEVEL: "warn", MOONMIND_RETRY_BACKOFF_MS: "100" };
  delete env.NATS_URL;
  dev = spawn(process.execPath, [BIN, "dev", "--stand-in"], { env, stdio: ["ignore", "pipe", "pipe"] });
  devExit = new Promise((r) => dev.once("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`dev did not come up: ${out}`)), 30_000);
    dev.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ctrl-C stops everything")) {
        clearTimeout(timer);
        resolve();
      }
    });
    dev.once("exit", (code) => reject(new Error(`dev exited with ${code}: ${out}`)));
  });
});

afterAll(async () => {
  if (dev && dev.exitCode === null) {
    dev.kill("SIGINT");
    await devExit;
  }
  await rm(dir, { recursive: true, force: true });
});

describe("the one-machine stack", () => {
  it("runs a job submitted with `moonmind submit --wait` to succeeded (exit 0)", async () => {
    const r = await moonmind("submit", "--repository", repo, "--instructions", "write NOTES.md: hello", "--id", "dev-ok", "--wait", "--json");
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type?: string; subject?: string });
    expect(lines[0]).toMatchObject({ jobId: "dev-ok" });
    expect(lines.at(-1)).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
  });

  it("exits 1 from --wait when the job fails", async () => {
    const r = await moonmind("submit", "--repository", repo, "--instructions", "fail", "--max-attempts", "1", "--wait");
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/dead-lettered after attempt 1: AGENT_FAILED/);
  });

  it("refuses a bad job before queueing it, with exit 2", async () => {
    const r = await moonmind("submit", "--repository", repo, "--instructions", "x", "--runtime", "cobol");
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown runtime 'cobol'/);
  });

  it("replays a finished job's history with `moonmind watch <id>`", async () => {
    const r = await moonmind("watch", "dev-ok");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split("\n").map((l) => l.split(/\s+/)[2])).toEqual([
      "accepted",
      "routed",
      "claimed",
      "preflight",
      "started",
      "…",
      "succeeded",
    ]);
  });

  it("stops everything on Ctrl-C", async () => {
    dev.kill("SIGINT");
    expect(await devExit).toBe(0);
    expect(existsSync(join(dir, "var", "nats.url"))).toBe(false);
  });
});

/**
 * The README's path, as a person runs it: `moonmind dev --stand-in` (what `npm start -- --stand-in`
 * runs) brings up nats-server, intake and a worker; `moonmind submit --wait` from another process
 * ends `succeeded`; Ctrl-C — sent to the whole process group, as a terminal sends it — stops
 * everything, the server last. A second stack on the same data dir is refused, a crashed worker
 * comes back, and a launcher killed outright leaves no actor behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeRepo } from "../helpers/stack.js";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
let dir: string;
let repo: string;
let env: NodeJS.ProcessEnv;
/** Where the stand-in stack keeps its store and nats.url: its own, apart from a real stack's. */
let standInDir: string;
let dev: Dev;

interface Dev {
  child: ChildProcess;
  exit: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

const moonmind = (...args: string[]) =>
  execa(process.execPath, [BIN, ...args], { env: { ...env, MOONMIND_DATA_DIR: standInDir }, reject: false, timeout: 60_000, stdin: "ignore" });

/** Starts `moonmind dev --stand-in` in its own process group, as a shell starts a foreground job. */
async function startDev(): Promise<Dev> {
  const child = spawn(process.execPath, [BIN, "dev", "--stand-in"], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dev did not come up: ${out}${err}`)), 30_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ctrl-C stops everything")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`dev exited with ${code}: ${out}${err}`)));
  });
  return { child, exit, stdout: () => out, stderr: () => err };
}

/** Every process on this machine started for this test's data dir (actors and their server). */
function stackProcesses(): Array<{ pid: number; cmd: string }> {
  const found: Array<{ pid: number; cmd: string }> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, "utf8");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      if (environ.includes(dir) || cmd.includes(dir)) found.push({ pid: Number(name), cmd });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-dev-"));
  repo = await makeRepo(join(dir, "repo"));
  env = { ...process.env, MOONMIND_DATA_DIR: join(dir, "var"), MOONMIND_LOG_LEVEL: "warn", MOONMIND_RETRY_BACKOFF_MS: "100", MOONMIND_VIZ_PORT: "0" };
  delete env.NATS_URL;
  standInDir = join(dir, "var", "stand-in");
  dev = await startDev();
});

afterAll(async () => {
  for (const d of [dev]) {
    if (d && d.child.exitCode === null) {
      d.child.kill("SIGINT");
      await d.exit;
    }
  }
  for (const p of stackProcesses()) process.kill(p.pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("the one-machine stack", () => {
  it("prints the live view's address, which serves the page with every machine's diagram", async () => {
    const url = /live view:\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(dev.stdout())?.[1];
    expect(url, dev.stdout()).toBeDefined();
    const page = await fetch(url!);
    expect(page.status).toBe(200);
    const html = await page.text();
    for (const machine of ["worker", "auth", "job"]) expect(html).toContain(`data-machine="${machine}"`);
  });

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

  it("refuses a second stack on the same data dir, naming the first, and leaves the first untouched", async () => {
    const second = await execa(process.execPath, [BIN, "dev", "--stand-in"], { env, reject: false, timeout: 30_000, stdin: "ignore" });
    expect(second.exitCode).toBe(78);
    expect(second.stderr).toContain(`another moonmind dev (pid ${dev.child.pid}`);
    expect(existsSync(join(standInDir, "nats.url"))).toBe(true);
    const r = await moonmind("submit", "--repository", repo, "--instructions", "say still here", "--wait");
    expect(r.exitCode).toBe(0);
  });

  it("restarts a worker that crashed, and keeps running", async () => {
    // Its sources through tsx, or the compiled build once one is newer (tests/e2e/compiled.test.ts makes one).
    const worker = stackProcesses().find((p) => /actors\/worker\/main\.(ts|js)/.test(p.cmd))!;
    expect(worker).toBeDefined();
    process.kill(worker.pid, "SIGKILL");
    await vi.waitFor(() => expect(dev.stderr()).toContain("worker-codex restarted"), { timeout: 15_000, interval: 100 });
    expect(dev.stderr()).toMatch(/worker-codex exited \(SIGKILL\); restarting it in 1 s/);
    const r = await moonmind("submit", "--repository", repo, "--instructions", "say back again", "--wait");
    expect(r.exitCode).toBe(0);
  });

  it("restarts its nats-server when it dies, on the same port and store; the lock names the new one and the actors reconnect", async () => {
    const lockFile = join(standInDir, "dev.lock");
    const urlBefore = readFileSync(join(standInDir, "nats.url"), "utf8");
    const servers = () => stackProcesses().filter((p) => p.cmd.includes("nats-server"));
    const [killed] = servers();
    expect(killed).toBeDefined();
    expect((JSON.parse(readFileSync(lockFile, "utf8")) as { serverPid?: number }).serverPid).toBe(killed!.pid);
    process.kill(killed!.pid, "SIGKILL");
    await vi.waitFor(() => expect(dev.stderr()).toContain("nats-server restarted"), { timeout: 20_000, interval: 100 });
    expect(dev.stderr()).toMatch(/nats-server exited \(pid \d+, not stopped by this launcher; its log: .*\); restarting it in 1 s/);
    const now = servers();
    expect(now).toHaveLength(1);
    expect(now[0]!.pid).not.toBe(killed!.pid);
    expect((JSON.parse(readFileSync(lockFile, "utf8")) as { serverPid?: number }).serverPid).toBe(now[0]!.pid);
    expect(readFileSync(join(standInDir, "nats.url"), "utf8")).toBe(urlBefore);
    // Intake and the worker found the new server by themselves; the store (the first job's history) is the same.
    const r = await moonmind("submit", "--repository", repo, "--instructions", "say the server came back", "--wait");
    expect(r.exitCode).toBe(0);
    expect((await moonmind("watch", "dev-ok")).stdout).toMatch(/succeeded/);
  }, 90_000);

  it("stops everything on Ctrl-C sent to its process group, the server last, leaving nothing behind", async () => {
    process.kill(-dev.child.pid!, "SIGINT");
    expect(await dev.exit).toBe(0);
    expect(dev.stderr()).toContain("moonmind dev: stopped");
    expect(stackProcesses()).toEqual([]);
    expect(existsSync(join(standInDir, "nats.url"))).toBe(false);
    expect(existsSync(join(standInDir, "dev.lock"))).toBe(false);
  });

  it("leaves no actor running when the launcher is killed outright; the next start takes over its server and store", async () => {
    const doomed = await startDev();
    doomed.child.kill("SIGKILL");
    await doomed.exit;
    // The actors see their launcher's pipe close and stop; only the server is left, for the next start.
    await vi.waitFor(() => expect(stackProcesses().map((p) => p.cmd).filter((c) => c.includes("actors/"))).toEqual([]), {
      timeout: 30_000,
      interval: 200,
    });
    dev = await startDev();
    const r = await moonmind("submit", "--repository", repo, "--instructions", "say after a crash", "--wait");
    expect(r.exitCode).toBe(0);
    process.kill(-dev.child.pid!, "SIGINT");
    expect(await dev.exit).toBe(0);
    expect(stackProcesses()).toEqual([]);
  }, 120_000);
});

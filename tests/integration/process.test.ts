/** Running an agent process: lines as they come, no stdin, and the whole process tree stopped. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PROJECT_ROOT } from "../../src/paths.js";
import { killOrphanAgents, runProcess } from "../../src/runtimes/process.js";

const sh = (script: string) => ({ bin: "/bin/sh", args: ["-c", script], env: { PATH: process.env.PATH ?? "" }, cwd: "/" });
/** Running, as opposed to gone or a zombie waiting for init to reap it. */
const running = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};

describe("runProcess", () => {
  it("reads stdout and stderr line by line and reports the exit code", async () => {
    const lines: string[] = [];
    const r = await runProcess(sh("echo one; echo two >&2; echo three; exit 3"), { timeoutMs: 10_000, killGraceMs: 500, onLine: (l, s) => lines.push(`${s}:${l}`) });
    expect(r.exitCode).toBe(3);
    expect(lines.sort()).toEqual(["stderr:two", "stdout:one", "stdout:three"]);
  });

  it("gives the CLI no stdin: a read ends at once", async () => {
    const lines: string[] = [];
    const r = await runProcess(sh("read x; echo \"got:$?\""), { timeoutMs: 10_000, killGraceMs: 500, onLine: (l) => lines.push(l) });
    expect(r.exitCode).toBe(0);
    expect(lines).toEqual(["got:1"]);
  });

  it("kills the whole process tree on cancel, escalating to SIGKILL for a child that ignores SIGTERM", async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    const done = runProcess(sh("trap '' TERM; sleep 300 & echo child:$!; wait"), {
      signal: controller.signal,
      timeoutMs: 60_000,
      killGraceMs: 300,
      onLine: (l) => {
        lines.push(l);
        if (l.startsWith("child:")) controller.abort();
      },
    });
    const r = await done;
    expect(r.cancelled).toBe(true);
    const child = Number(lines.find((l) => l.startsWith("child:"))!.slice(6));
    await vi.waitFor(() => expect(running(child)).toBe(false), { timeout: 5_000 });
  });

  it("stops a process that outlives its timeout", async () => {
    const r = await runProcess(sh("sleep 300"), { timeoutMs: 200, killGraceMs: 200, onLine: () => undefined });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).not.toBe(0);
  });

  it("reports a binary that does not exist", async () => {
    const r = await runProcess({ bin: "/no/such/cli", args: [], env: {}, cwd: "/" }, { timeoutMs: 1_000, killGraceMs: 100, onLine: () => undefined });
    expect(r.spawnError).toBeDefined();
    expect(r.exitCode).toBe(127);
  });
});

/**
 * Grandchildren that leave the CLI's process group and session (`setsid`), as the stress runs saw
 * survive a timeout: one plain, one that ignores SIGTERM, one that keeps the output pipe open.
 * Each writes its pid to `<dir>/<n>.pid`.
 */
const ESCAPES = (dir: string) =>
  [
    `setsid sh -c 'echo $$ > ${dir}/1.pid; exec sleep 1000' >/dev/null 2>&1 &`,
    `setsid sh -c 'trap "" TERM; echo $$ > ${dir}/2.pid; exec sleep 1001' >/dev/null 2>&1 &`,
    `(setsid sh -c 'echo $$ > ${dir}/3.pid; exec sleep 1002' &)`,
    `while [ ! -s ${dir}/1.pid ] || [ ! -s ${dir}/2.pid ] || [ ! -s ${dir}/3.pid ]; do sleep 0.05; done`,
    "echo escaped",
  ].join("\n");
const escapedPids = async (dir: string) => Promise.all([1, 2, 3].map(async (n) => Number(await readFile(join(dir, `${n}.pid`), "utf8"))));

describe("runProcess settles only when every process the agent started is gone", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "moonmind-process-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const fresh = async () => mkdtemp(join(dir, "run-"));

  it("on cancel: setsid grandchildren, one ignoring SIGTERM and one holding the pipe, are dead when it resolves", async () => {
    const run = await fresh();
    const controller = new AbortController();
    const r = await runProcess(sh(`${ESCAPES(run)}\ntrap '' TERM; sleep 300`), {
      signal: controller.signal,
      timeoutMs: 60_000,
      killGraceMs: 300,
      onLine: (l) => l === "escaped" && controller.abort(),
    });
    expect(r.cancelled).toBe(true);
    expect(r.survivors).toBeUndefined();
    // Checked at the moment it resolved: no waiting.
    for (const pid of await escapedPids(run)) expect(running(pid), `pid ${pid}`).toBe(false);
  });

  it("on timeout: the same", async () => {
    const run = await fresh();
    const r = await runProcess(sh(`${ESCAPES(run)}\ntrap '' TERM; sleep 300`), { timeoutMs: 1_500, killGraceMs: 300, onLine: () => undefined });
    expect(r.timedOut).toBe(true);
    for (const pid of await escapedPids(run)) expect(running(pid), `pid ${pid}`).toBe(false);
  });

  it("after the CLI's own exit: what it left behind is stopped, and its exit code stands", async () => {
    const run = await fresh();
    const lines: string[] = [];
    const r = await runProcess(sh(`${ESCAPES(run)}\necho last; exit 4`), { timeoutMs: 30_000, killGraceMs: 300, onLine: (l) => lines.push(l) });
    expect(r.exitCode).toBe(4);
    expect(lines).toEqual(["escaped", "last"]);
    for (const pid of await escapedPids(run)) expect(running(pid), `pid ${pid}`).toBe(false);
  });

  it("sends SIGTERM first: a grandchild that handles it ends cleanly within the grace period", async () => {
    const run = await fresh();
    const controller = new AbortController();
    const script = `setsid sh -c 'trap "echo bye > ${run}/bye; exit 0" TERM; echo $$ > ${run}/1.pid; while :; do sleep 0.05; done' >/dev/null 2>&1 &
      while [ ! -s ${run}/1.pid ]; do sleep 0.05; done; echo ready; sleep 300`;
    await runProcess(sh(script), { signal: controller.signal, timeoutMs: 60_000, killGraceMs: 5_000, onLine: (l) => l === "ready" && controller.abort() });
    expect(running(Number(await readFile(join(run, "1.pid"), "utf8")))).toBe(false);
    expect(await readFile(join(run, "bye"), "utf8")).toBe("bye\n");
  });

  it("without a sandbox, the CLI itself dies with its SIGKILLed worker (parent-death signal)", async () => {
    const run = await fresh();
    const code = `import { runProcess } from ${JSON.stringify(join(PROJECT_ROOT, "src/runtimes/process.ts"))};
      await runProcess({ bin: "/bin/sh", args: ["-c", "trap '' TERM; echo $$ > ${run}/cli.pid; echo ready; while :; do sleep 0.05; done"], env: { PATH: process.env.PATH }, cwd: "/" },
        { timeoutMs: 60_000, killGraceMs: 300, onLine: (l) => console.log(l) });`;
    const worker = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((ok) => worker.stdout.on("data", (d: Buffer) => String(d).includes("ready") && ok()));
    const cli = Number(await readFile(join(run, "cli.pid"), "utf8"));
    expect(running(cli)).toBe(true);
    worker.kill("SIGKILL");
    await vi.waitFor(() => expect(running(cli)).toBe(false), { timeout: 5_000, interval: 50 });
  });

  it("killOrphanAgents stops the agents of a worker that was SIGKILLed, and never a live worker's", async () => {
    const workdir = await fresh();
    const dead = await mkdtemp(join(workdir, "job-a-"));
    const live = await mkdtemp(join(workdir, "job-b-"));
    // A stand-in worker running one agent (no sandbox), then SIGKILLed.
    const code = `import { runProcess } from ${JSON.stringify(join(PROJECT_ROOT, "src/runtimes/process.ts"))};
      await runProcess({ bin: "/bin/sh", args: ["-c", ${JSON.stringify(`${ESCAPES(dead)}
sleep 300`)}], env: { PATH: process.env.PATH, HOME: ${JSON.stringify(dead)} }, cwd: "/" },
        { timeoutMs: 60_000, killGraceMs: 300, onLine: (l) => console.log(l) });`;
    const worker = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((ok) => worker.stdout.on("data", (d: Buffer) => String(d).includes("escaped") && ok()));
    const orphans = await escapedPids(dead);
    worker.kill("SIGKILL");
    await new Promise((ok) => worker.once("exit", ok));
    // A live run in the same workdir.
    const controller = new AbortController();
    let livePid = 0;
    const liveRun = runProcess({ ...sh(`echo $$; exec sleep 300`), cwd: live }, {
      signal: controller.signal,
      timeoutMs: 60_000,
      killGraceMs: 300,
      onLine: (l) => (livePid = Number(l)),
    });
    await vi.waitFor(() => expect(livePid).toBeGreaterThan(0));
    // Without a sandbox nothing ends them: the worker is gone, they are not.
    for (const pid of orphans) expect(running(pid), `orphan ${pid} before the sweep`).toBe(true);

    const swept = await killOrphanAgents({ workdir, graceMs: 300 });
    expect(swept.survivors).toEqual([]);
    expect(swept.killed).toEqual(expect.arrayContaining(orphans));
    for (const pid of orphans) expect(running(pid), `orphan ${pid}`).toBe(false);
    expect(running(livePid)).toBe(true);
    controller.abort();
    await liveRun;
  });
});

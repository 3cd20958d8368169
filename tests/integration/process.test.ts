/** Running an agent process: lines as they come, no stdin, and the whole process tree stopped. */
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import { runProcess } from "../../src/runtimes/process.js";

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

/**
 * `moonmind worker` is one process: killing the command kills the actor (no orphan heartbeating
 * on), SIGTERM ends it in bounded time even when its nats-server has gone away, and one started
 * while the server is down waits for it instead of exiting. `moonmind health` (a container's
 * HEALTHCHECK) says serving only while the actor is connected.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Kvm } from "@nats-io/kv";
import { BUCKETS } from "../../src/subjects.js";
import { startStack, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
let stack: TestStack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(() => stack.stop());

/** `moonmind worker` in a process group of its own, as a shell or a container runs it. */
async function startWorkerCommand(id: string) {
  const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === id && e.type === "online", 30_000);
  const child = spawn(process.execPath, [BIN, "worker"], {
    env: { ...process.env, ...stack.env, MOONMIND_WORKER_ID: id },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
  await online;
  return { child, exit };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("moonmind worker", () => {
  it("runs its actor in its own process: SIGKILL of the command leaves nothing running", async () => {
    const w = await startWorkerCommand("w-cli-kill");
    w.child.kill("SIGKILL");
    expect((await w.exit).signal).toBe("SIGKILL");
    await vi.waitFor(() => expect(groupAlive(w.child.pid!)).toBe(false), { timeout: 5_000, interval: 50 });
  });

  it("stops on SIGTERM within its bounds when nats-server is gone", async () => {
    const w = await startWorkerCommand("w-cli-orphan");
    await stack.stopServer();
    try {
      const started = Date.now();
      w.child.kill("SIGTERM");
      const { code } = await w.exit;
      expect(code).toBe(0);
      // Each stop step that talks to NATS is bounded (5 s); the rest is local.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(groupAlive(w.child.pid!)).toBe(false);
    } finally {
      await stack.startServer();
    }
  }, 40_000);

  it("started while nats-server is down, waits for it and serves once it is back", async () => {
    await stack.stopServer();
    const child = spawn(process.execPath, [BIN, "worker"], {
      env: { ...process.env, ...stack.env, MOONMIND_WORKER_ID: "w-cli-early", MOONMIND_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null }>((r) => child.once("exit", (code) => r({ code })));
    try {
      await vi.waitFor(() => expect(stderr).toContain("NATS is not reachable yet"), { timeout: 15_000, interval: 50 });
    } finally {
      await stack.startServer();
    }
    // Its record in KV `workers` says it serves (read from the store: an event could pass before this side reconnects).
    const workers = await new Kvm(stack.nc).open(BUCKETS.workers);
    await vi.waitFor(async () => expect((await workers.get("w-cli-early"))?.json<{ state: string }>().state).toBe("serving"), { timeout: 30_000, interval: 200 });
    child.kill("SIGTERM");
    expect((await exit).code).toBe(0);
  }, 60_000);

  it("a stop while it waits for nats-server ends it at once with 0", async () => {
    const child = spawn(process.execPath, [BIN, "worker"], {
      env: { ...process.env, ...stack.env, NATS_URL: "nats://127.0.0.1:1", MOONMIND_WORKER_ID: "w-cli-never" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null }>((r) => child.once("exit", (code) => r({ code })));
    await vi.waitFor(() => expect(stderr).toContain("NATS is not reachable yet"), { timeout: 15_000, interval: 50 });
    const started = Date.now();
    child.kill("SIGTERM");
    expect((await exit).code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 30_000);

  it("is healthy (moonmind health) only while it serves and NATS answers", async () => {
    const health = async () => {
      const r = await promisify(execFile)(process.execPath, [BIN, "health", "worker"], { env: { ...process.env, ...stack.env } }).then(
        (out) => ({ code: 0, text: out.stdout }),
        (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, text: err.stderr ?? "" }),
      );
      return r;
    };
    const becomes = (code: number, text: string, timeout: number) =>
      vi.waitFor(
        async () => {
          const r = await health();
          expect(r.code).toBe(code);
          expect(r.text).toContain(text);
        },
        { timeout, interval: 250 },
      );
    const w = await startWorkerCommand("w-health");
    try {
      await becomes(0, "serving (pid", 15_000);
      await stack.stopServer();
      try {
        // A ping every 5 s that goes unanswered for 2 s removes the file.
        await becomes(1, "no worker is serving here", 20_000);
      } finally {
        await stack.startServer();
      }
      await becomes(0, "serving (pid", 20_000);
    } finally {
      w.child.kill("SIGTERM");
      expect((await w.exit).code).toBe(0);
    }
    expect(await health()).toMatchObject({ code: 1, text: expect.stringContaining("no worker is serving here") });
  }, 90_000);
});

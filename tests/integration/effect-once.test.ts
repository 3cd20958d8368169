/**
 * A job's effect happens once: a store outage after the agents finished does not run them again,
 * a checkout slower than ack_wait is not redelivered, and the run record — not the shard
 * message — says what runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { canConnect, freePort } from "../helpers/net.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { newRunRecord } from "../../src/runs/record.js";
import { route } from "../../src/routing.js";
import { JobRequestSchema } from "../../src/schemas/job.js";
import { BUCKETS, INTAKE_CONSUMER, OBJECT_STORES, STREAMS, SUBJECTS, deadSubject, shardConsumer } from "../../src/subjects.js";
import { spawnActor } from "../../src/cli/commands/actor.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  // The agents' ledgers (the side channel) live outside their workspaces, where a sandboxed agent cannot write.
  stack = await startStack({ MOONMIND_WORKER_SHARDS: "0-2", MOONMIND_WORKER_CONCURRENCY: "4", MOONMIND_AGENT_SANDBOX: "none" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const ledger = (name: string) => join(stack.dir, `ledger-${name}`);
const ledgerLines = (name: string) => (existsSync(ledger(name)) ? readFileSync(ledger(name), "utf8").trim().split("\n") : []);
const runsOf = (name: string) => ledgerLines(name).filter((l) => l.startsWith("start")).length;
const finishesOf = (name: string) => ledgerLines(name).filter((l) => l.startsWith("done")).length;
const terminal = (id: string) => (e: { jobId: string; type: string }) =>
  e.jobId === id && (e.type === "succeeded" || e.type === "failed" || e.type === "cancelled");

describe("the store goes away after the agents finish", () => {
  it("keeps each finished result and stores it once the server is back: no agent runs twice, none misses output.log", async () => {
    const worker = await startWorker(stack, "w-outage");
    let stopped = false;
    try {
      const ids = ["out-0", "out-1", "out-2", "out-3"];
      for (const id of ids) {
        await stack.js.publish(
          SUBJECTS.submit,
          JSON.stringify({ id, repository: stack.repo, instructions: `ledger ${ledger(id)}\nsleep 1500\nwrite ${id}.md: kept` }),
        );
      }
      for (const id of ids) await events.waitFor((e) => e.jobId === id && e.type === "started");
      await stack.stopServer();
      stopped = true;
      // Every agent finishes while the server is down; the outage then lasts a few seconds more.
      await vi.waitFor(() => expect(ids.map(finishesOf)).toEqual([1, 1, 1, 1]), { timeout: 15_000, interval: 50 });
      await new Promise((r) => setTimeout(r, 3_000));
      await stack.startServer();
      stopped = false;
      for (const id of ids) {
        expect(await events.waitFor(terminal(id), 30_000)).toMatchObject({ type: "succeeded", attempt: 1, outcome: "CHANGES_READY" });
      }
      expect(ids.map(runsOf)).toEqual([1, 1, 1, 1]);
      const artifacts = await new Objm(stack.nc).open(OBJECT_STORES.artifacts);
      for (const id of ids) {
        const run = (await stack.runs.get(id))!.record;
        expect(run).toMatchObject({ state: "succeeded", attempts: 1 });
        expect(run.artifacts).toEqual(expect.arrayContaining([`${id}/output.log`, `${id}/changes.patch`]));
        expect(await artifacts.info(`${id}/output.log`)).not.toBeNull();
      }
    } finally {
      if (stopped) await stack.startServer();
      await worker.stop();
    }
  });
});

describe("a checkout slower than ack_wait", () => {
  let daemon: ChildProcess;
  let proxy: Server;
  let url: string;

  beforeAll(async () => {
    const base = join(stack.dir, "served");
    const { execFileSync } = await import("node:child_process");
    execFileSync("git", ["clone", "-q", "--bare", stack.repo, join(base, "slow.git")]);
    const daemonPort = await freePort();
    daemon = spawn("git", ["daemon", "--reuseaddr", "--export-all", `--base-path=${base}`, "--listen=127.0.0.1", `--port=${daemonPort}`, base], {
      stdio: "ignore",
    });
    await vi.waitFor(() => canConnect(daemonPort), { timeout: 5_000, interval: 50 });
    // Each connection waits 3 s (ack_wait is 2 s) before git's bytes flow.
    proxy = createServer((client) => {
      setTimeout(() => {
        const upstream = connect(daemonPort, "127.0.0.1");
        client.pipe(upstream).pipe(client);
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
      }, 3_000);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    url = `git://127.0.0.1:${(proxy.address() as { port: number }).port}/slow.git`;
  });

  afterAll(() => {
    proxy?.close();
    daemon?.kill();
  });

  it("keeps the message from claim to settle: one delivery, one claim, though a second worker waits", async () => {
    const a = await startWorker(stack, "w-slow-a");
    const b = await startWorker(stack, "w-slow-b");
    try {
      const id = "slow-clone";
      const r = route("codex", url, 3);
      // Every delivery, first or again, takes a consumer sequence number.
      const deliveries = async () => (await stack.jsm.consumers.info(STREAMS.jobs, r.consumer)).delivered.consumer_seq;
      const before = await deliveries();
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: url, instructions: `ledger ${ledger(id)}\nwrite SLOW.md: ok` }));
      expect(await events.waitFor(terminal(id), 30_000)).toMatchObject({ type: "succeeded", attempt: 1 });
      expect(events.events.filter((e) => e.jobId === id && e.type === "claimed")).toHaveLength(1);
      expect(await deliveries()).toBe(before + 1);
      expect(runsOf(id)).toBe(1);
      // The run's queue and volume facts are on its record.
      expect((await stack.runs.get(id))!.record.diagnostics).toMatchObject({
        queue: r.subject,
        consumer: r.consumer,
        deliveries: 1,
        pending: expect.any(Number),
        volumeName: "codex_auth_volume",
        volumePath: stack.env.CODEX_VOLUME_PATH,
      });
    } finally {
      await stopAll(a, b);
    }
  });
});

describe("an agent printing one huge line", () => {
  it("does not stall the worker's heartbeat: no other worker takes the job over, its agent runs once", async () => {
    // Worker processes of their own: a stalled event loop must not stall the other worker too.
    const spawnWorker = async (id: string) => {
      const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === id && e.type === "online", 30_000);
      const child = spawnActor("worker", { ...process.env, ...stack.env, MOONMIND_WORKER_SHARDS: "0-2", MOONMIND_WORKER_ID: id }, { stdio: "pipe" });
      child.stdout?.resume();
      child.stderr?.resume();
      const exited = new Promise((r) => child.once("exit", r));
      await online;
      return { stop: async () => void (child.kill("SIGTERM"), await exited) };
    };
    const a = await spawnWorker("w-huge-a");
    const b = await spawnWorker("w-huge-b");
    try {
      const id = "huge-line";
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, instructions: `ledger ${ledger(id)}\nshout 320000\nshout 320000\nsay done` }));
      expect(await events.waitFor(terminal(id), 90_000)).toMatchObject({ type: "succeeded", attempt: 1 });
      expect(events.events.filter((e) => e.jobId === id && e.type === "claimed")).toHaveLength(1);
      expect(runsOf(id)).toBe(1);
    } finally {
      await stopAll(a, b);
    }
  }, 120_000);
});

describe("the run record says what runs", () => {
  it("refuses a shard message whose body disagrees with the record, and never runs it", async () => {
    const id = "forged-1";
    const recorded = JobRequestSchema.parse({
      id,
      type: "task",
      repository: stack.repo,
      targetRuntime: "codex",
      task: { instructions: `ledger ${ledger("forged-real")}\nwrite REAL.md: real`, runtime: { mode: "codex" } },
    });
    const r = route("codex", stack.repo, 3);
    expect(await stack.runs.create(newRunRecord(recorded, r, new Date().toISOString()))).toBe(true);
    const forged = { ...recorded, task: { ...recorded.task, instructions: `ledger ${ledger("forged-fake")}\nwrite FORGED.md: forged` } };
    const dead = stack.nc.subscribe(deadSubject(id), { max: 1 });
    await stack.js.publish(r.subject, JSON.stringify(forged));

    const worker = await startWorker(stack, "w-forged");
    try {
      for await (const m of dead) {
        expect(m.json()).toMatchObject({ jobId: id, stage: "worker", reason: expect.stringContaining("disagrees with the request") });
      }
      await vi.waitFor(async () => expect((await stack.jsm.consumers.info(STREAMS.jobs, shardConsumer("codex", r.shard))).num_pending).toBe(0));
      await vi.waitFor(async () => expect((await stack.jsm.consumers.info(STREAMS.jobs, shardConsumer("codex", r.shard))).num_ack_pending).toBe(0));
      expect(runsOf("forged-fake")).toBe(0);
      expect((await stack.runs.get(id))!.record).toMatchObject({ state: "queued", attempts: 0 });
      expect(events.events.filter((e) => e.jobId === id)).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("ends a job whose record was deleted with a failed event naming why, instead of dropping it in silence", async () => {
    const id = "orphan-1";
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, instructions: `ledger ${ledger(id)}\nsay hi` }));
    await events.waitFor((e) => e.jobId === id && e.type === "routed");
    await (await new Kvm(stack.nc).open(BUCKETS.runs)).delete(id);
    const worker = await startWorker(stack, "w-orphan");
    try {
      expect(await events.waitFor(terminal(id), 15_000)).toMatchObject({
        type: "failed",
        state: "failed",
        error: { code: "RUN_RECORD_MISSING" },
      });
      expect(runsOf(id)).toBe(0);
    } finally {
      await worker.stop();
    }
    expect((await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER)).num_ack_pending).toBe(0);
  });
});

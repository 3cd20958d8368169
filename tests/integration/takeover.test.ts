/**
 * Taking a run over: a run whose agent finished on a worker that is gone ends with RESULT_LOST
 * instead of running the agent again, and a run taken over (or stopped) during its checkout
 * leaves no workspace behind.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createServer, connect, type Server } from "node:net";
import { canConnect, freePort } from "../helpers/net.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Kvm, type KV } from "@nats-io/kv";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { spawnActor } from "../../src/cli/commands/actor.js";
import { newRunRecord } from "../../src/runs/record.js";
import { claimed } from "../../src/runs/claim.js";
import { route } from "../../src/routing.js";
import { JobRequestSchema } from "../../src/schemas/job.js";
import type { WorkerRecord } from "../../src/schemas/events.js";
import type { RunRecord } from "../../src/schemas/run.js";
import { BUCKETS, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { VERSION } from "../../src/version.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack({ MOONMIND_WORKER_SHARDS: "0-2", MOONMIND_WORKER_CONCURRENCY: "2", MOONMIND_AGENT_SANDBOX: "none" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const ledger = (name: string) => join(stack.dir, `ledger-${name}`);
const ledgerLines = (name: string) => (existsSync(ledger(name)) ? readFileSync(ledger(name), "utf8").trim().split("\n") : []);
const count = (name: string, kind: "start" | "done") => ledgerLines(name).filter((l) => l.startsWith(kind)).length;
const terminal = (id: string) => (e: { jobId: string; type: string }) =>
  e.jobId === id && (e.type === "succeeded" || e.type === "failed" || e.type === "cancelled");
/** The job's directories under a workdir: its own and the worker's state for it. */
const jobDirs = (workdir: string, id: string) =>
  [workdir, join(workdir, ".worker")].flatMap((d) => (existsSync(d) ? readdirSync(d).filter((n) => n.startsWith(`${id}-`)) : []));

describe("a run whose agent finished on a worker that is gone", () => {
  it("ends failed with RESULT_LOST, naming the worker, and never starts the agent again", async () => {
    const id = "lost-1";
    const request = JobRequestSchema.parse({
      id,
      type: "task",
      repository: stack.repo,
      targetRuntime: "codex",
      task: { instructions: `ledger ${ledger(id)}\nwrite AGAIN.md: again`, runtime: { mode: "codex" } },
    });
    const r = route("codex", stack.repo, 3);
    // What a worker that died between its agent's exit and its result leaves: the finish recorded, nothing collected.
    const now = new Date().toISOString();
    const left: RunRecord = { ...claimed(newRunRecord(request, r, now), "w-gone", now), startedAt: now, agentFinishedAt: now };
    expect(await stack.runs.create(left)).toBe(true);
    await stack.js.publish(r.subject, JSON.stringify(request));

    const worker = await startWorker(stack, "w-taker");
    try {
      expect(await events.waitFor(terminal(id), 25_000)).toMatchObject({
        type: "failed",
        attempt: 1,
        state: "failed",
        error: { code: "RESULT_LOST", message: expect.stringContaining("worker w-gone") },
      });
      expect(count(id, "start")).toBe(0);
      expect((await stack.runs.get(id))!.record).toMatchObject({
        state: "failed",
        attempts: 1,
        workerId: "w-taker",
        lastError: { code: "RESULT_LOST" },
        result: { outcome: "FAILED" },
      });
    } finally {
      await worker.stop();
    }
  }, 40_000);

  it("a worker SIGKILLed right after its agent finished: its restarted life ends the run RESULT_LOST, the agent ran once", async () => {
    const id = "killed-1";
    const workdir = join(stack.dir, "ws-killed");
    const env = { ...process.env, ...stack.env, MOONMIND_WORKER_ID: "w-killed", MOONMIND_WORKDIR: workdir };
    const spawnWorker = async () => {
      const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === "w-killed" && e.type === "online", 30_000);
      const child = spawnActor("worker", env, { stdio: "pipe" });
      child.stdout?.resume();
      child.stderr?.resume();
      await online;
      return child;
    };
    const runs: KV = await new Kvm(stack.nc).open(BUCKETS.runs);
    const watch = await runs.watch({ key: id });
    let first: ChildProcess | undefined = await spawnWorker();
    let second: ChildProcess | undefined;
    try {
      const killed = (async () => {
        for await (const e of watch) {
          if (e.operation !== "PUT" || e.length === 0) continue;
          const r = e.json() as RunRecord;
          // The finish is on the record: strike before anything is collected.
          if (r.state === "running" && r.agentFinishedAt !== undefined) {
            first!.kill("SIGKILL");
            return r;
          }
          if (r.state !== "running" && r.state !== "queued") return r;
        }
        return undefined;
      })();
      const writes = Array.from({ length: 40 }, (_, i) => `write f${i}.md: ${i}`).join("\n");
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, instructions: `ledger ${ledger(id)}\n${writes}` }));
      const seen = await killed;
      expect(seen).toMatchObject({ state: "running", workerId: "w-killed", attempts: 1 });
      await new Promise<void>((resolve) => (first!.exitCode !== null || first!.signalCode !== null ? resolve() : first!.once("exit", () => resolve())));
      first = undefined;
      // The same id and data dir, as a restarted container: it knows its earlier life is gone.
      second = await spawnWorker();
      expect(await events.waitFor(terminal(id), 25_000)).toMatchObject({
        type: "failed",
        state: "failed",
        error: { code: "RESULT_LOST", message: expect.stringContaining("earlier life") },
      });
      // Once: its turn was over when the worker died (it may not have got as far as its own exit).
      expect(count(id, "start")).toBe(1);
      expect(count(id, "done")).toBeLessThanOrEqual(1);
      expect(events.events.filter((e) => e.jobId === id && e.type === "succeeded")).toEqual([]);
      // Its start-up sweep took the workspace the result was in.
      expect(jobDirs(workdir, id)).toEqual([]);
    } finally {
      watch.stop();
      for (const c of [first, second]) {
        if (!c || c.exitCode !== null || c.signalCode !== null) continue;
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await exited;
      }
    }
  }, 60_000);
});

describe("a run stopped or taken over during its checkout", () => {
  let daemon: ChildProcess;
  let proxy: Server;
  let url: string;
  let workers: KV;

  beforeAll(async () => {
    const base = join(stack.dir, "served");
    execFileSync("git", ["clone", "-q", "--bare", stack.repo, join(base, "slow.git")]);
    const daemonPort = await freePort();
    daemon = spawn("git", ["daemon", "--reuseaddr", "--export-all", `--base-path=${base}`, "--listen=127.0.0.1", `--port=${daemonPort}`, base], {
      stdio: "ignore",
    });
    await vi.waitFor(() => canConnect(daemonPort), { timeout: 5_000, interval: 50 });
    // Each connection waits 3 s before git's bytes flow: the checkout is under way that long.
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
    workers = await new Kvm(stack.nc).open(BUCKETS.workers);
  });

  afterAll(() => {
    proxy?.close();
    daemon?.kill();
  });

  /** A live-looking worker record, so the run's new holder is not taken for dead. */
  const heartbeat = (workerId: string) =>
    workers.put(
      workerId,
      JSON.stringify({
        workerId,
        runtimes: ["codex"],
        shards: [],
        concurrency: 1,
        inFlight: [],
        state: "serving",
        auth: {},
        versions: {},
        version: VERSION,
        startedAt: new Date().toISOString(),
        heartbeatAt: new Date().toISOString(),
      }),
    );

  it("taken over by another worker while the checkout ran: the directory it made goes", async () => {
    const id = "taken-during-checkout";
    const workdir = join(stack.dir, "ws-taken");
    const worker = await startWorker(stack, "w-checkout", { MOONMIND_WORKDIR: workdir });
    await heartbeat("w-new-holder");
    const beat = setInterval(() => void heartbeat("w-new-holder").catch(() => undefined), 300);
    try {
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: url, instructions: `ledger ${ledger(id)}\nwrite T.md: t` }));
      await vi.waitFor(() => expect(jobDirs(workdir, id).length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      // Another worker takes the run while this one is still fetching.
      await stack.runs.update(id, (r) => ({ ...r, workerId: "w-new-holder", attempts: r.attempts + 1, updatedAt: new Date().toISOString() }));
      await vi.waitFor(() => expect(jobDirs(workdir, id)).toEqual([]), { timeout: 15_000, interval: 50 });
      expect(count(id, "start")).toBe(0);
      expect((await stack.runs.get(id))!.record).toMatchObject({ state: "running", workerId: "w-new-holder" });
    } finally {
      clearInterval(beat);
      // Let the redelivered message go: the run ends here.
      await stack.runs.update(id, (r) => ({ ...r, state: "cancelled", updatedAt: new Date().toISOString() }));
      await worker.stop();
    }
  }, 40_000);

  it("handed back by a stopping worker while the checkout ran: nothing is left once the worker has stopped", async () => {
    const id = "stopped-during-checkout";
    const workdir = join(stack.dir, "ws-stopped");
    const worker = await startWorker(stack, "w-stopping", { MOONMIND_WORKDIR: workdir, MOONMIND_STOP_GRACE_MS: "100" });
    let stopped = false;
    try {
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: url, instructions: `ledger ${ledger(id)}\nwrite S.md: s` }));
      await vi.waitFor(() => expect(jobDirs(workdir, id).length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      const started = Date.now();
      await worker.stop();
      stopped = true;
      expect(jobDirs(workdir, id)).toEqual([]);
      // The checkout was stopped, not waited for.
      expect(Date.now() - started).toBeLessThan(2_500);
      expect((await stack.runs.get(id))!.record).toMatchObject({ state: "queued", lastError: { code: "WORKER_STOPPING" } });
    } finally {
      if (!stopped) await worker.stop();
      await stack.runs.update(id, (r) => ({ ...r, state: "cancelled", updatedAt: new Date().toISOString() }));
    }
  }, 40_000);
});

describe("a run held by a worker restarted under its old id", () => {
  // A container keeps its id: the new life heartbeats as the run's holder, yet it runs only what
  // is delivered to it, and the run's shard is not its to serve. It does not hold what its killed
  // life held: another worker takes that over. A run its current life claimed it does hold.
  const HOLDER = "w-reborn";
  const HEIR = "w-heir";
  let r: ReturnType<typeof route>;
  let reborn: Worker | undefined;
  let heir: Worker | undefined;
  let workers: KV;

  const request = (id: string, body: string) =>
    JobRequestSchema.parse({
      id,
      type: "task",
      repository: stack.repo,
      targetRuntime: "codex",
      task: { instructions: `ledger ${ledger(id)}\n${body}`, runtime: { mode: "codex" } },
    });
  const holderRecord = async () => (await workers.get(HOLDER))!.json() as WorkerRecord;
  const of = (id: string, type: string) => events.events.filter((e) => e.jobId === id && e.type === type);

  beforeAll(async () => {
    r = route("codex", stack.repo, 3);
    const others = [0, 1, 2].filter((s) => s !== r.shard).join(",");
    workers = await new Kvm(stack.nc).open(BUCKETS.workers);
    reborn = await startWorker(stack, HOLDER, { MOONMIND_WORKER_SHARDS: others, MOONMIND_WORKDIR: join(stack.dir, "ws-reborn") });
    heir = await startWorker(stack, HEIR, { MOONMIND_WORKER_SHARDS: String(r.shard), MOONMIND_WORKDIR: join(stack.dir, "ws-heir") });
  });

  afterAll(async () => {
    await heir?.stop();
    await reborn?.stop();
  });

  it("a run its killed life held is taken over by another worker and ends once, though the holder's id heartbeats", async () => {
    const id = "reborn-held";
    const job = request(id, "write R.md: r");
    // What the killed life left: running under its id, claimed before the new life started.
    const before = new Date(Date.now() - 60_000).toISOString();
    expect(await stack.runs.create(claimed(newRunRecord(job, r, before), HOLDER, before))).toBe(true);
    const life = await holderRecord();
    expect(life).toMatchObject({ state: "serving", inFlight: [] });
    expect(Date.parse(life.startedAt)).toBeGreaterThan(Date.parse(before));

    await stack.js.publish(r.subject, JSON.stringify(job));
    expect(await events.waitFor(terminal(id), 15_000)).toMatchObject({ type: "succeeded", workerId: HEIR, attempt: 2 });
    expect((await stack.runs.get(id))!.record).toMatchObject({ state: "succeeded", workerId: HEIR, attempts: 2 });
    expect(of(id, "claimed")).toEqual([expect.objectContaining({ workerId: HEIR, attempt: 2 })]);
    expect(events.events.filter(terminal(id))).toHaveLength(1);
    expect(count(id, "start")).toBe(1);
    // The holder was alive throughout: the run was not taken for a dead worker's.
    expect((await holderRecord()).startedAt).toBe(life.startedAt);
  }, 30_000);

  it("a run its current life claimed stays its own: the other worker finds it busy, delivery after delivery", async () => {
    const id = "reborn-fresh";
    const job = request(id, "write F.md: f");
    const now = new Date().toISOString();
    expect(await stack.runs.create(claimed(newRunRecord(job, r, now), HOLDER, now))).toBe(true);
    const seeded = (await stack.runs.get(id))!;
    // Claimed by this life (after it started), not yet in its heartbeat's in-flight list.
    const life = await holderRecord();
    expect(Date.parse(life.startedAt)).toBeLessThan(Date.parse(now));
    expect(life.inFlight).not.toContain(id);

    // Each delivery the heir finds busy it hands back (-NAK) on the message's ack subject.
    let seq = -1;
    const naks: string[] = [];
    let sawNaks: () => void = () => undefined;
    const threeNaks = new Promise<void>((resolve) => (sawNaks = resolve));
    const sub = stack.nc.subscribe(`$JS.ACK.${STREAMS.jobs}.${r.consumer}.>`, {
      callback: (_err, msg) => {
        // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ms>.<pending>
        if (Number(msg.subject.split(".")[5]) !== seq || !msg.string().startsWith("-NAK")) return;
        naks.push(msg.string());
        if (naks.length >= 3) sawNaks();
      },
    });
    try {
      await stack.nc.flush();
      seq = (await stack.js.publish(r.subject, JSON.stringify(job))).seq;
      // Two busy answers a TTL apart would have been a takeover were the holder taken for gone
      // (the first starts its silence wait, the second ends it): three leave no doubt.
      await Promise.race([
        threeNaks,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`saw ${naks.length} NAKs of ${id} within 10 s`)), 10_000).unref()),
      ]);
      const after = (await stack.runs.get(id))!;
      expect(after.revision).toBe(seeded.revision);
      expect(after.record).toMatchObject({ state: "running", workerId: HOLDER, attempts: 1 });
      expect(of(id, "claimed")).toEqual([]);
      expect(events.events.filter(terminal(id))).toEqual([]);
      expect(count(id, "start")).toBe(0);
    } finally {
      sub.unsubscribe();
      // Let the message go: the run ends here.
      await stack.runs.update(id, (rec) => ({ ...rec, state: "cancelled", updatedAt: new Date().toISOString() }));
    }
  }, 30_000);
});

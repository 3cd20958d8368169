/**
 * Intake throughput beside the raw JetStream loop it is built on, on one server in one call.
 *
 *   raw loop        a durable pull consumer on a work-queue stream; for each message, js.publish
 *                   it to another stream (awaited), then ack: one at a time, the loop a person writes
 *   raw pipelined   the same, with up to MOONMIND_INTAKE_INFLIGHT messages at once (KeyedPipeline)
 *   intake          jobs.submit → validated, run record created, accepted/routed, routed to its
 *                   shard, acked: a worker stand-in is ready for every codex shard, so no job waits
 *   intake waiting  the same with no worker: each job's record and events also say why it waits
 *
 * Every figure drains a backlog: all `jobs` messages are published before the consumer (or the
 * intake replica) starts, and the rate is (jobs − 1) / (last done − first done), so neither start-
 * up nor publishing is counted. Each figure is measured twice, in the order A B C D D C B A, and
 * is the total over both passes: on a machine whose load drifts (CI, a shared box) the ratios
 * then compare like with like. "Done" is where the item's last output is known to be stored: the
 * republish's ack for raw, the job's last event (routed, or waiting) as this process sees it for
 * intake. Every payload is a submission of the same shape, ~90 bytes.
 *
 * The ready worker is a record written into KV `workers` (and refreshed within its TTL), not a
 * Worker: intake's WorkerDirectory reads nothing else, and a real Worker would take the routed jobs
 * and spend the CPU being measured. The run checks that no job of that figure said `waiting`.
 *
 * Run alone: `npx tsx bench/intake.ts` (starts its own nats-server; BENCH_JOBS, default 2000).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import { Intake } from "../actors/intake/intake.js";
import { KeyedPipeline } from "../actors/intake/pipeline.js";
import { loadConfig, type Config } from "../src/config.js";
import { createLogger, type Logger } from "../src/logger.js";
import { connectNats } from "../src/nats/connect.js";
import { provision } from "../src/nats/provision.js";
import { startNatsServer } from "../src/nats/server.js";
import type { WorkerRecord } from "../src/schemas/events.js";
import { BUCKETS, STREAMS, SUBJECTS, jobEventSubject, shardConsumer } from "../src/subjects.js";
import { volumeNameFor } from "../src/workers/readiness.js";

export interface IntakeFigures {
  jobs: number;
  intakePerSec: number;
  rawLoopPerSec: number;
  rawPipelinedPerSec: number;
  inflight: number;
  /** Intake when no worker serves the shards (every job also says why it waits). */
  intakeWaitingPerSec?: number;
}

export interface BenchIntakeOptions {
  url: string;
  env: Record<string, string>;
  jobs: number;
  log: Logger;
  onProgress?: (done: number, total: number) => void;
}

// The bench's own streams (not MoonMind's), removed at the end.
const RAW_IN = { stream: "BENCH_INTAKE_IN", subject: "bench.intake.in" };
const RAW_OUT = { stream: "BENCH_INTAKE_OUT", subject: "bench.intake.out" };
const PUBLISH_WINDOW = 500;

/** Items done over the span from the first to the last. */
class Span {
  private first = 0;
  private last = 0;
  count = 0;
  done(): void {
    const now = performance.now();
    if (this.count++ === 0) this.first = now;
    this.last = now;
  }
  get intervals(): number {
    return Math.max(0, this.count - 1);
  }
  get ms(): number {
    return this.last - this.first;
  }
}

/** Per second over several passes: intervals over time, summed. */
function rate(spans: Span[]): number {
  const ms = spans.reduce((a, s) => a + s.ms, 0);
  return ms > 0 ? (spans.reduce((a, s) => a + s.intervals, 0) * 1_000) / ms : 0;
}

async function publishAll(js: JetStreamClient, subject: string, bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += PUBLISH_WINDOW) {
    await Promise.all(bodies.slice(i, i + PUBLISH_WINDOW).map((b) => js.publish(subject, b)));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`bench: ${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export async function benchIntake(o: BenchIntakeOptions): Promise<IntakeFigures> {
  const config = loadConfig(o.env);
  const inflight = config.env.MOONMIND_INTAKE_INFLIGHT;
  const nc = await connectNats({ servers: o.url, name: "bench-intake" });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const runs = await kvm.open(BUCKETS.runs);
  const workers = await kvm.open(BUCKETS.workers);
  const tag = Date.now().toString(36);
  const total = o.jobs * 8;
  let progressed = 0;
  const step = Math.max(1, Math.floor(o.jobs / 50));
  const progress = () => {
    if (++progressed % step === 0 || progressed === total) o.onProgress?.(progressed, total);
  };
  let pass = 0;
  const submissions = (label: string) =>
    Array.from({ length: o.jobs }, (_, i) => JSON.stringify({ id: `bi-${tag}-${pass}${label}-${i}`, repository: `org/repo-${i % 97}`, instructions: "x" }));
  const timeoutMs = Math.max(60_000, o.jobs * 20);

  try {
    await jsm.streams.add({ name: RAW_IN.stream, subjects: [`${RAW_IN.subject}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    await jsm.streams.add({ name: RAW_OUT.stream, subjects: [`${RAW_OUT.subject}.>`], storage: StorageType.File });
    const measure = {
      rawLoop: () => rawRepublish(nc, js, 1, submissions("raw1"), "loop", progress, timeoutMs),
      rawPipelined: () => rawRepublish(nc, js, inflight, submissions("rawp"), "pipelined", progress, timeoutMs),
      intake: () => intakeRun({ o, config, js, runs, workers, bodies: submissions("ready"), ready: true, progress, timeoutMs }),
      intakeWaiting: () => intakeRun({ o, config, js, runs, workers, bodies: submissions("wait"), ready: false, progress, timeoutMs }),
    };
    const order = Object.keys(measure) as Array<keyof typeof measure>;
    const spans: Record<keyof typeof measure, Span[]> = { rawLoop: [], rawPipelined: [], intake: [], intakeWaiting: [] };
    for (const name of [...order, ...[...order].reverse()]) {
      pass++;
      spans[name].push(await measure[name]());
    }
    return {
      jobs: o.jobs,
      intakePerSec: rate(spans.intake),
      rawLoopPerSec: rate(spans.rawLoop),
      rawPipelinedPerSec: rate(spans.rawPipelined),
      inflight,
      intakeWaitingPerSec: rate(spans.intakeWaiting),
    };
  } finally {
    for (const s of [RAW_IN.stream, RAW_OUT.stream]) await jsm.streams.delete(s).catch(() => false);
    await nc.close();
  }
}

/** The raw loop: consume, republish (awaited), ack; `inflight` at once (1: one at a time). */
async function rawRepublish(
  nc: NatsConnection,
  js: JetStreamClient,
  inflight: number,
  bodies: string[],
  name: string,
  progress: () => void,
  timeoutMs: number,
): Promise<Span> {
  const jsm = await jetstreamManager(nc);
  await publishAll(js, `${RAW_IN.subject}.x`, bodies);
  await jsm.consumers.add(RAW_IN.stream, { durable_name: name, ack_policy: AckPolicy.Explicit, ack_wait: 60_000_000_000 });
  const span = new Span();
  const messages = await (await js.consumers.get(RAW_IN.stream, name)).consume({ max_messages: Math.max(inflight, 64) });
  const republish = async (data: Uint8Array, ack: () => void) => {
    await js.publish(`${RAW_OUT.subject}.x`, data);
    ack();
    span.done();
    progress();
  };
  const run = async () => {
    if (inflight === 1) {
      for await (const m of messages) {
        await republish(m.data, () => m.ack());
        if (span.count === bodies.length) break;
      }
      return;
    }
    const pipeline = new KeyedPipeline(inflight);
    let taken = 0;
    for await (const m of messages) {
      // Keyed by stream sequence: every message its own key, as in a loop that keys nothing.
      await pipeline.push(String(m.seq), () => republish(m.data, () => m.ack()));
      if (++taken === bodies.length) break;
    }
    await pipeline.idle();
  };
  try {
    await withTimeout(run(), timeoutMs, `raw ${name}`);
  } finally {
    await messages.close();
    await jsm.consumers.delete(RAW_IN.stream, name).catch(() => false);
  }
  return span;
}

interface IntakeRun {
  o: BenchIntakeOptions;
  config: Config;
  js: JetStreamClient;
  runs: KV;
  workers: KV;
  bodies: string[];
  ready: boolean;
  progress: () => void;
  timeoutMs: number;
}

/** One intake replica draining `bodies` from jobs.submit. */
async function intakeRun({ o, config, js, runs, workers, bodies, ready, progress, timeoutMs }: IntakeRun): Promise<Span> {
  const nc = await connectNats({ servers: o.url, name: "bench-intake-observer" });
  const ids = bodies.map((b) => (JSON.parse(b) as { id: string }).id);
  const prefix = ids[0]!.replace(/-0$/, "-");
  const workerId = `bench-intake-ready-${process.pid}`;
  let heartbeat: NodeJS.Timeout | undefined;
  const span = new Span();
  let waited = 0;
  let finished!: () => void;
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  // The job's last event: routed when a worker is ready, waiting when none is.
  nc.subscribe(jobEventSubject("*", ready ? "routed" : "waiting"), {
    callback: (_err, m) => {
      if (!m.subject.split(".")[2]!.startsWith(prefix)) return;
      span.done();
      progress();
      if (span.count === bodies.length) finished();
    },
  });
  if (ready) nc.subscribe(jobEventSubject("*", "waiting"), { callback: (_e, m) => void (m.subject.split(".")[2]!.startsWith(prefix) && waited++) });
  let intake: Intake | undefined;
  try {
    if (ready) {
      const beat = () => workers.put(workerId, JSON.stringify(readyWorker(config, workerId)));
      await beat();
      heartbeat = setInterval(() => void beat().catch(() => undefined), Math.min(1_000, config.env.MOONMIND_WORKER_TTL_MS / 3));
    }
    await nc.flush();
    await publishAll(js, SUBJECTS.submit, bodies);
    intake = new Intake(await connectNats({ servers: o.url, name: `bench-intake-${ready ? "ready" : "waiting"}` }), config, o.log);
    await intake.start();
    await withTimeout(allDone, timeoutMs, `intake (${ready ? "ready worker" : "no worker"})`);
    if (waited > 0) throw new Error(`bench: ${waited} jobs said waiting though a worker was ready for their shard`);
    return span;
  } finally {
    clearInterval(heartbeat);
    await intake?.stop();
    if (ready) await workers.delete(workerId).catch(() => undefined);
    // Leave the server as it was: the routed jobs off the shards (the purge takes every shard
    // message, so call this on a server with no jobs of its own queued), their run records gone.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.allShards }).catch(() => undefined);
    for (let i = 0; i < ids.length; i += PUBLISH_WINDOW) {
      await Promise.all(ids.slice(i, i + PUBLISH_WINDOW).map((id) => runs.purge(id).catch(() => undefined)));
    }
    await nc.close();
  }
}

/** What a serving worker with a ready codex login on every codex shard heartbeats into KV `workers`. */
function readyWorker(config: Config, workerId: string): WorkerRecord {
  const now = new Date().toISOString();
  const shards = Array.from({ length: config.shardCounts.codex }, (_, n) => shardConsumer("codex", n));
  // One codex login: the directory takes a worker's only login of a runtime for each of its shards.
  const login = `codex:${volumeNameFor(config.env, "codex", 0)}`;
  return {
    workerId,
    runtimes: ["codex"],
    shards,
    concurrency: 1,
    inFlight: [],
    state: "serving",
    auth: { [login]: { state: "ready", status: "ok", message: "bench stand-in", checkedAt: now } },
    versions: {},
    version: "bench",
    startedAt: now,
    heartbeatAt: now,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const jobs = Number(process.env.BENCH_JOBS ?? 2_000);
  const dir = await mkdtemp(join(tmpdir(), "moonmind-bench-intake-"));
  const server = await startNatsServer();
  try {
    const env = { NATS_URL: server.url, MOONMIND_DATA_DIR: join(dir, "var"), MOONMIND_LOG_LEVEL: "silent", ...pick(process.env, "MOONMIND_INTAKE_INFLIGHT", "MOONMIND_CODEX_SHARDS") };
    const nc = await connectNats({ servers: server.url, name: "bench-provision" });
    await provision(nc, loadConfig(env));
    await nc.close();
    const f = await benchIntake({ url: server.url, env, jobs, log: createLogger({ actor: "bench" }, "silent") });
    const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
    const ratio = (n: number, d: number) => (n / d).toFixed(2);
    process.stdout.write(
      [
        `nats-server at ${server.url}, node ${process.version}, ${jobs} jobs, in flight ${f.inflight}`,
        `raw loop (1 at a time)      ${fmt(f.rawLoopPerSec)}/s`,
        `raw pipelined (${f.inflight})          ${fmt(f.rawPipelinedPerSec)}/s`,
        `intake, worker ready        ${fmt(f.intakePerSec)}/s   ${ratio(f.intakePerSec, f.rawLoopPerSec)}× raw loop, ${ratio(f.intakePerSec, f.rawPipelinedPerSec)}× raw pipelined`,
        `intake, no worker (waiting) ${fmt(f.intakeWaitingPerSec ?? 0)}/s   ${ratio(f.intakeWaitingPerSec ?? 0, f.rawLoopPerSec)}× raw loop`,
        "",
      ].join("\n"),
    );
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function pick(env: NodeJS.ProcessEnv, ...names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] === undefined ? [] : [[n, env[n]!]])));
}

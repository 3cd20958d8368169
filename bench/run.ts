/**
 * `npm run bench`: MoonMind's paths measured side by side with raw JetStream on the same
 * nats-server, in one run. Prints a table; numbers are for this machine and this run only.
 *
 *   raw publish      js.publish to a work-queue stream, 500 in flight
 *   raw consume      pull consumer + ack of those messages
 *   intake routing   jobs.submit → validated, run record created, events, routed to a shard
 *   job dispatch     routed job → claimed, workspace, agent (stand-in), artifacts, acked
 *   pickup           routed → claimed for an idle worker on 1, 3, 9 shards; settle → next claim (bench/pickup.ts)
 *
 * Env: BENCH_MESSAGES (raw, default 20000), BENCH_JOBS (intake, default 2000),
 *      BENCH_RUNS (dispatch, default 40), BENCH_CONCURRENCY (worker, default 2),
 *      BENCH_PICKUP (jobs per pickup figure, default 40).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, RetentionPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Intake } from "../actors/intake/intake.js";
import { Worker } from "../actors/worker/worker.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectNats } from "../src/nats/connect.js";
import { provision } from "../src/nats/provision.js";
import { startNatsServer } from "../src/nats/server.js";
import { SUBJECTS, jobEventFilter } from "../src/subjects.js";
import { makeRepo } from "../tests/helpers/stack.js";
import { benchPickup, type Percentiles } from "./pickup.js";

const N_RAW = Number(process.env.BENCH_MESSAGES ?? 20_000);
const N_JOBS = Number(process.env.BENCH_JOBS ?? 2_000);
const N_RUNS = Number(process.env.BENCH_RUNS ?? 40);
const N_PICKUP = Number(process.env.BENCH_PICKUP ?? 40);
const CONCURRENCY = process.env.BENCH_CONCURRENCY ?? "2";
const FAKE_CODEX = join(import.meta.dirname, "../tests/fixtures/fake-codex.mjs");
const log = createLogger({ actor: "bench" }, "silent");

interface Row {
  path: string;
  count: number;
  seconds: number;
  note: string;
}
const rows: Row[] = [];
const record = (path: string, count: number, startedAt: number, note: string) =>
  rows.push({ path, count, seconds: (performance.now() - startedAt) / 1_000, note });

const dir = await mkdtemp(join(tmpdir(), "moonmind-bench-"));
const server = await startNatsServer();
try {
  const volume = join(dir, "auth");
  await mkdir(volume);
  await writeFile(join(volume, "auth.json"), "{}");
  const repo = await makeRepo(join(dir, "repo"));
  const env = {
    NATS_URL: server.url,
    MOONMIND_DATA_DIR: join(dir, "var"),
    MOONMIND_LOG_LEVEL: "silent",
    MOONMIND_CODEX_BIN: FAKE_CODEX,
    CODEX_VOLUME_PATH: volume,
    MOONMIND_ALLOW_LOCAL_REPOS: "true",
    MOONMIND_WORKER_CONCURRENCY: CONCURRENCY,
    MOONMIND_LOG_BATCH_MS: "50",
  };
  const config = loadConfig(env);
  const nc = await connectNats({ servers: server.url, name: "bench" });
  await provision(nc, config);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  // --- raw JetStream: the floor everything else stands on
  await jsm.streams.add({ name: "RAW", subjects: ["raw.>"], retention: RetentionPolicy.Workqueue });
  await jsm.consumers.add("RAW", { durable_name: "raw", ack_policy: AckPolicy.Explicit });
  const payload = JSON.stringify({ repository: "org/repo", instructions: "fix the flaky test" });
  let t = performance.now();
  for (let i = 0; i < N_RAW; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, N_RAW - i) }, () => js.publish("raw.jobs", payload)));
  }
  record("raw JetStream publish", N_RAW, t, "500 in flight");
  t = performance.now();
  const rawConsumer = await js.consumers.get("RAW", "raw");
  const rawMessages = await rawConsumer.consume();
  let seen = 0;
  for await (const m of rawMessages) {
    m.ack();
    if (++seen === N_RAW) break;
  }
  record("raw JetStream consume + ack", N_RAW, t, "one pull consumer");

  // --- intake: validation, KV create, accepted/routed events, routed publish, ack
  const intake = new Intake(await connectNats({ servers: server.url, name: "bench-intake" }), config, log);
  await intake.start();
  let routed = 0;
  const routedAll = new Promise<void>((resolve) => {
    nc.subscribe(jobEventFilter().replace(/\*$/, "routed"), {
      callback: () => {
        if (++routed === N_JOBS) resolve();
      },
    });
  });
  t = performance.now();
  for (let i = 0; i < N_JOBS; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, N_JOBS - i) }, (_, k) =>
        js.publish(SUBJECTS.submit, JSON.stringify({ id: `bench-${i + k}`, repository: `org/repo-${(i + k) % 97}`, instructions: "x" })),
      ),
    );
  }
  await routedAll;
  record("intake routing (1 replica)", N_JOBS, t, "submit → run record + routed");
  await intake.stop();
  // Drop the routed jobs: the dispatch bench below brings its own.
  await jsm.streams.purge("JOBS");

  // --- dispatch: a worker running trivial jobs end to end (agent = scripted stand-in process)
  const intake2 = new Intake(await connectNats({ servers: server.url, name: "bench-intake-2" }), config, log);
  await intake2.start();
  const worker = new Worker(await connectNats({ servers: server.url, name: "bench-worker" }), loadConfig({ ...env, MOONMIND_WORKER_ID: "bench-w" }), log);
  await worker.start();
  let done = 0;
  const doneAll = new Promise<void>((resolve) => {
    nc.subscribe(jobEventFilter().replace(/\*$/, "succeeded"), {
      callback: () => {
        if (++done === N_RUNS) resolve();
      },
    });
  });
  t = performance.now();
  for (let i = 0; i < N_RUNS; i++) {
    await js.publish(SUBJECTS.submit, JSON.stringify({ id: `run-${i}`, repository: repo, affinityKey: `k${i}`, instructions: `write F${i}.md: x` }));
  }
  await doneAll;
  record(`job dispatch (1 worker, concurrency ${CONCURRENCY})`, N_RUNS, t, "claim, git checkout, agent process, patch, ack");
  await worker.stop();
  await intake2.stop();
  await rawMessages.close();
  await jsm.streams.purge("JOBS");
  const pickup: Record<string, Percentiles> = await benchPickup({ url: server.url, env: { ...env, BENCH_REPO: repo }, dir, jobs: N_PICKUP, log });
  await nc.close();

  const mem = process.memoryUsage();
  const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
  const out = [
    `nats-server at ${server.url}, node ${process.version}, ${new Date().toISOString()}`,
    "",
    "| path | count | seconds | per second | note |",
    "|---|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.path} | ${fmt(r.count)} | ${r.seconds.toFixed(2)} | ${fmt(r.count / r.seconds)} | ${r.note} |`),
    "",
    "| latency (ms) | p50 | p99 | samples | target |",
    "|---|---:|---:|---:|---|",
    ...Object.entries(pickup).map(([k, v]) => `| ${k} | ${v.p50.toFixed(1)} | ${v.p99.toFixed(1)} | ${v.n} | ${k.startsWith("raw") ? "baseline" : "p99 ≤ 20"} |`),
    "",
    `bench process: rss ${fmt(mem.rss / 2 ** 20)} MiB, heap used ${fmt(mem.heapUsed / 2 ** 20)} MiB`,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}

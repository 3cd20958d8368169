/**
 * `npm run bench` (`-- --quick` for a smoke run under a minute that asserts nothing): MoonMind's
 * paths measured beside raw JetStream on one nats-server of its own, in one run. Prints one
 * table, writes bench/results.json and bench/results.svg; a progress line goes to stderr.
 * The method of every figure is in bench/README.md.
 *
 *   raw          js.publish with 500 in flight; one pull consumer consuming + acking (bench/raw.ts)
 *   pickup       routed → claimed, an idle worker process on 1, 3, 9 shards; settle → next claim (bench/pickup.ts)
 *   intake       one replica beside a raw consume → republish loop (bench/intake.ts)
 *   overhead     per-job cost besides the agent process; preflight cached vs spawned (bench/overhead.ts)
 *   footprint    idle worker process tree RSS; `moonmind route` wall time (bench/footprint.ts)
 *   scale        worker processes 1 → 3 → 6 and shards 1 → 3 → 9; a queued drain by 3 then 6 (bench/scale.ts)
 *
 * Env: BENCH_MESSAGES (raw, full 50000), BENCH_PICKUP (jobs per pickup figure, full 100),
 *      BENCH_JOBS (intake, full 2000), BENCH_SCALE_JOBS (per scale point, full 200),
 *      BENCH_DRAIN_JOBS (queued, full 10000), BENCH_DRAIN_PHASE_SECONDS (budget of each drain
 *      phase, full 150; 0 = drain them all), BENCH_WORKER_CONCURRENCY (per worker process, 2).
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectNats } from "../src/nats/connect.js";
import { provision } from "../src/nats/provision.js";
import { resolveNatsServerBin, startNatsServer } from "../src/nats/server.js";
import { makeRepo } from "../tests/helpers/stack.js";
import { FAKE_CODEX, type BenchContext } from "./context.js";
import { benchBareNode, benchFootprint, idleFootprint, type IdleWorker } from "./footprint.js";
import { benchIntake } from "./intake.js";
import { benchOverhead } from "./overhead.js";
import { benchPickup } from "./pickup.js";
import { killAll } from "./procs.js";
import { createProgress } from "./progress.js";
import { benchRaw } from "./raw.js";
import { table, writeResults, type Results } from "./report.js";
import { benchScale } from "./scale.js";

const quick = process.argv.includes("--quick");
const envNum = (name: string, full: number, short: number) => (quick ? short : Number(process.env[name] ?? full));
const N = {
  pickup: envNum("BENCH_PICKUP", 100, 3),
  intake: envNum("BENCH_JOBS", 2_000, 300),
  scale: envNum("BENCH_SCALE_JOBS", 200, 10),
  drain: envNum("BENCH_DRAIN_JOBS", 10_000, 60),
  phaseSeconds: envNum("BENCH_DRAIN_PHASE_SECONDS", 150, 4),
  concurrency: Number(process.env.BENCH_WORKER_CONCURRENCY ?? 2),
};

const progress = createProgress();
const started = performance.now();
const dir = await mkdtemp(join(tmpdir(), "moonmind-bench-"));
progress.step("starting nats-server");
const server = await startNatsServer();
const cleanup = async () => {
  killAll();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
};
process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
try {
  const volume = join(dir, "auth");
  await mkdir(volume);
  await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
  const repo = await makeRepo(join(dir, "repo"));
  const env: Record<string, string> = {
    NATS_URL: server.url,
    MOONMIND_DATA_DIR: join(dir, "var"),
    MOONMIND_LOG_LEVEL: "silent",
    MOONMIND_CODEX_BIN: FAKE_CODEX,
    CODEX_VOLUME_PATH: volume,
    MOONMIND_ALLOW_LOCAL_REPOS: "true",
    MOONMIND_LOG_BATCH_MS: "50",
  };
  const log = createLogger({ actor: "bench" }, "silent");
  const ctx: BenchContext = { url: server.url, env, dir, repo, volume, serverPid: server.pid, quick, log, progress };
  const nc = await connectNats({ servers: server.url, name: "bench" });
  await provision(nc, loadConfig(env));
  await nc.close();

  const raw = await benchRaw(ctx);
  progress.step("pickup: an idle worker process on 1, 3, 9 shards");
  const pickup = await benchPickup({ url: server.url, env: { ...env, BENCH_REPO: repo }, dir, jobs: N.pickup, log, onProgress: (d, t) => progress.count(d, t) });
  progress.step("intake: one replica beside raw loops");
  const intake = await benchIntake({ url: server.url, env, jobs: N.intake, log, onProgress: (d, t) => progress.count(d, t) });
  let idle: IdleWorker = { rssMiB: 0, processes: 0, tree: [] };
  const overhead = await benchOverhead(ctx, async (worker) => void (idle = await idleFootprint(ctx, worker)));
  const bareNode = await benchBareNode(ctx);
  const footprint = await benchFootprint(ctx, idle);
  const { drain, points: scale } = await benchScale(ctx, {
    drainJobs: N.drain,
    phaseSeconds: N.phaseSeconds,
    pointJobs: N.scale,
    pickupJobs: quick ? 2 : 20,
    concurrency: N.concurrency,
    workerPoints: quick ? [6, 1] : [6, 3, 1],
    shardPoints: !quick,
  });

  const results: Results = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    wallSeconds: (performance.now() - started) / 1_000,
    machine: {
      cores: availableParallelism(),
      cpuModel: cpus()[0]?.model.trim() ?? "unknown",
      memoryGiB: totalmem() / 2 ** 30,
      platform: `${process.platform} ${process.arch}`,
      node: process.version,
      natsServer: natsServerVersion(),
    },
    raw,
    bareNode,
    intake,
    pickup,
    overhead,
    scale,
    drain,
    footprint,
  };
  progress.step("writing results.json and results.svg");
  await writeResults(results);
  progress.done();
  process.stdout.write(table(results));
} finally {
  await cleanup();
}

function natsServerVersion(): string {
  try {
    return execFileSync(resolveNatsServerBin(), ["--version"], { encoding: "utf8" }).trim().replace(/^nats-server:\s*/, "");
  } catch {
    return "unknown";
  }
}

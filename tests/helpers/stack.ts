/**
 * One helper for every integration test file: a real nats-server on a random loopback port with
 * a temporary store, provisioned, plus a temporary git repository, login volume and workspace
 * root. Everything is removed by `stop()` (call it from afterAll).
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { Intake } from "../../actors/intake/intake.js";
import { Worker } from "../../actors/worker/worker.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { connectNats } from "../../src/nats/connect.js";
import { provision } from "../../src/nats/provision.js";
import { startNatsServer, type NatsServer } from "../../src/nats/server.js";
import { RunStore } from "../../src/runs/store.js";
import { BUCKETS } from "../../src/subjects.js";

export const FAKE_CODEX = join(import.meta.dirname, "../fixtures/fake-codex.mjs");

export interface TestStack {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  runs: RunStore;
  dir: string;
  /** A local git repository with one commit, usable as a job's repository. */
  repo: string;
  /** Environment for runtime processes pointed at this server, the stand-in codex and the temp dirs. */
  env: Record<string, string>;
  config(overrides?: Record<string, string>): Config;
  /** Stops the server, keeping its store; `startServer()` brings it back on the same port. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startStack(overrides: Record<string, string> = {}): Promise<TestStack> {
  const dir = await mkdtemp(join(tmpdir(), "moonmind-test-"));
  const storeDir = join(dir, "nats-store");
  let server = await startNatsServer({ storeDir });
  const volume = join(dir, "codex-auth");
  await mkdir(volume);
  await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
  const repo = await makeRepo(join(dir, "repo"));

  const env: Record<string, string> = {
    NATS_URL: server.url,
    MOONMIND_DATA_DIR: join(dir, "var"),
    MOONMIND_LOG_LEVEL: "warn",
    MOONMIND_CODEX_BIN: FAKE_CODEX,
    CODEX_VOLUME_PATH: volume,
    MOONMIND_ALLOW_LOCAL_REPOS: "true",
    MOONMIND_ACK_WAIT_MS: "2000",
    MOONMIND_HEARTBEAT_MS: "300",
    MOONMIND_WORKER_TTL_MS: "1500",
    MOONMIND_RETRY_BACKOFF_MS: "100",
    MOONMIND_RETRY_BACKOFF_MAX_MS: "500",
    MOONMIND_LOG_BATCH_MS: "50",
    MOONMIND_KILL_GRACE_MS: "500",
    MOONMIND_STOP_GRACE_MS: "5000",
    ...overrides,
  };
  const config = (more: Record<string, string> = {}) => loadConfig({ ...env, ...more });
  const nc = await connectNats({ servers: server.url, name: "test" });
  await provision(nc, config());
  const runs = new RunStore(await new Kvm(nc).open(BUCKETS.runs));

  const stack: TestStack = {
    server,
    nc,
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    runs,
    dir,
    repo,
    env,
    config,
    async stopServer() {
      await server.stop();
    },
    async startServer() {
      server = await startNatsServer({ storeDir, port: server.port });
      stack.server = server;
    },
    async stop() {
      await nc.close().catch(() => undefined);
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

export async function makeRepo(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  const git = (...args: string[]) =>
    execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@example.com", ...args], { cwd: path, stdio: "pipe" });
  git("init", "-q", "-b", "main");
  await writeFile(join(path, "README.md"), "# sample\n");
  git("add", "README.md");
  git("commit", "-q", "-m", "initial");
  return path;
}

export const quietLog = createLogger({ actor: "test" }, (process.env.MOONMIND_TEST_LOG as "info" | undefined) ?? "silent");

/** An intake replica on its own connection, started. */
export async function startIntake(stack: TestStack, env: Record<string, string> = {}): Promise<Intake> {
  const intake = new Intake(await connectNats({ servers: stack.server.url, name: "intake" }), stack.config(env), quietLog);
  await intake.start();
  return intake;
}

/** A worker on its own connection, started (serving or paused). */
export async function startWorker(stack: TestStack, id: string, env: Record<string, string> = {}): Promise<Worker> {
  const worker = new Worker(await connectNats({ servers: stack.server.url, name: id }), stack.config({ MOONMIND_WORKER_ID: id, ...env }), quietLog);
  await worker.start();
  return worker;
}

/** Stops, in the order given, whatever was started (missing ones skipped): from afterAll. */
export async function stopAll(...things: Array<{ stop?: () => Promise<unknown>; close?: () => unknown } | undefined>): Promise<void> {
  for (const thing of things) {
    if (thing?.stop) await thing.stop();
    else thing?.close?.();
  }
}

/**
 * The processes of a one-machine stack: a local nats-server (unless NATS_URL names one),
 * provisioning, intake, ops, the live view and the given workers as child processes, and an ordered stop.
 * `moonmind dev` and `moonmind demo` both run on it.
 *
 * - The data dir is locked: a second stack on the same store is refused, a stale lock taken over.
 * - nats-server and the actors each get their own process group, so a terminal's Ctrl-C reaches
 *   only the launcher, which stops the actors first and the server last.
 * - An actor that crashes is restarted with backoff; one that stops by itself (a drain request)
 *   stays down and is reported. Each actor watches the launcher through a stdin pipe and stops
 *   if the launcher is gone, however it went.
 * - The stack's own nats-server is kept up the same way (./local-server.ts): restarted on the same
 *   port and store, the lock and nats.url naming the new process; the actors reconnect to it.
 */
import type { ChildProcess } from "node:child_process";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Config } from "../config.js";
import { Kvm } from "@nats-io/kv";
import { connectNats } from "../nats/connect.js";
import { provision, type ProvisionReport } from "../nats/provision.js";
import { DEV_URL_FILE } from "../nats/url.js";
import { BUCKETS } from "../subjects.js";
import { EXIT_CODES } from "../errors.js";
import { VIZ_URL_FILE } from "../viz/url-file.js";
import { spawnActor, type ActorName } from "./commands/actor.js";
import { lockDataDir } from "./data-dir-lock.js";
import { keepNatsServer, type KeptServer } from "./local-server.js";

export interface WorkerSpec {
  name: string;
  env: Record<string, string>;
}

export type ChildEvent =
  | { kind: "crashed"; name: string; why: string; restartInMs: number }
  | { kind: "restarted"; name: string }
  | { kind: "stopped"; name: string; why: string };

export interface LocalStack {
  url: string;
  ownServer: boolean;
  dataDir: string;
  report: ProvisionReport;
  children: Map<string, ChildProcess>;
  /** The live view's address, once it serves (undefined when it could not start; its error is on stderr). */
  vizUrl: string | undefined;
  /** Crashes, restarts (of the actors and of the stack's own nats-server, named `nats-server`), and actors that stopped by themselves. */
  onChildEvent(cb: (e: ChildEvent) => void): void;
  stop(): Promise<void>;
}

const RESTART_BASE_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** An actor that ran this long before crashing starts its backoff afresh. */
const HEALTHY_AFTER_MS = 60_000;

export async function startLocalStack(
  config: Config,
  opts: { baseEnv: NodeJS.ProcessEnv; workers: WorkerSpec[]; quiet?: boolean; stopGraceMs?: number },
): Promise<LocalStack> {
  const dataDir = resolve(config.env.MOONMIND_DATA_DIR);
  await mkdir(dataDir, { recursive: true });
  const lock = await lockDataDir(dataDir);
  let server: KeptServer | undefined;
  let url = config.env.NATS_URL;
  try {
    if (!url) {
      server = await keepNatsServer({
        storeDir: join(dataDir, "nats"),
        logFile: join(dataDir, "nats-server.log"),
        urlFile: join(dataDir, DEV_URL_FILE),
        recordPid: (pid) => lock.setServerPid(pid),
      });
      url = server.url;
    }
    const nc = await connectNats({ servers: url, name: "moonmind-local-stack" });
    const report = await provision(nc, config).finally(() => nc.close());
    return await supervise({ config, opts, dataDir, url, server, report, release: async () => {
      await server?.stop();
      lock.release();
    } });
  } catch (err) {
    await server?.stop();
    lock.release();
    throw err;
  }
}

/**
 * Resolves once every named worker has its entry in KV `workers` (it is serving or paused), so
 * "the stack is up" means what it says; gives up quietly after `timeoutMs`.
 */
async function untilWorkersUp(url: string, ids: string[], timeoutMs: number): Promise<void> {
  if (ids.length === 0) return;
  const nc = await connectNats({ servers: url, name: "moonmind-local-stack" });
  try {
    const kv = await new Kvm(nc).open(BUCKETS.workers);
    const watch = await kv.watch();
    const seen = new Set<string>();
    const timer = setTimeout(() => watch.stop(), timeoutMs);
    for await (const e of watch) {
      const state = e.operation === "PUT" ? (e.json<{ state?: string }>()?.state ?? "") : "";
      if (ids.includes(e.key) && (state === "serving" || state === "paused")) seen.add(e.key);
      if (seen.size === ids.length) break;
    }
    clearTimeout(timer);
    watch.stop();
  } finally {
    await nc.close();
  }
}

async function supervise(s: {
  config: Config;
  opts: { baseEnv: NodeJS.ProcessEnv; workers: WorkerSpec[]; quiet?: boolean; stopGraceMs?: number };
  dataDir: string;
  url: string;
  server: KeptServer | undefined;
  report: ProvisionReport;
  release: () => Promise<void>;
}): Promise<LocalStack> {
  const env: NodeJS.ProcessEnv = { ...s.opts.baseEnv, NATS_URL: s.url, MOONMIND_DATA_DIR: s.dataDir };
  const stdio = s.opts.quiet ? "pipe" : "inherit";
  const specs: Array<{ name: string; actor: ActorName; env: NodeJS.ProcessEnv }> = [
    { name: "intake", actor: "intake", env },
    { name: "ops", actor: "ops", env },
    { name: "viz", actor: "viz", env },
    ...s.opts.workers.map((w) => ({ name: w.name, actor: "worker" as const, env: { ...env, ...w.env } })),
  ];
  const children = new Map<string, ChildProcess>();
  const timers = new Set<NodeJS.Timeout>();
  let listener: ((e: ChildEvent) => void) | undefined;
  let stopping: Promise<void> | undefined;

  const launch = (spec: (typeof specs)[number], failures: number) => {
    const child = spawnActor(spec.actor, spec.env, { detached: true, stdio });
    const startedAt = Date.now();
    children.set(spec.name, child);
    if (s.opts.quiet) {
      child.stdout?.resume();
      child.stderr?.resume();
    }
    child.stdin?.on("error", () => undefined);
    child.once("exit", (code, signal) => {
      if (stopping) return;
      const why = signal ?? `code ${code}`;
      if (code === 0) {
        listener?.({ kind: "stopped", name: spec.name, why: "it stopped by itself (drained); it stays down" });
        return;
      }
      if (code === EXIT_CODES.config) {
        // Its configuration is wrong (a port taken, a login missing with strict start-up): another start would fail alike.
        listener?.({ kind: "stopped", name: spec.name, why: "its configuration stops it (exit 78, the reason is above); it stays down" });
        return;
      }
      const streak = Date.now() - startedAt > HEALTHY_AFTER_MS ? 0 : failures;
      const restartInMs = Math.min(RESTART_BASE_MS * 2 ** streak, RESTART_MAX_MS);
      listener?.({ kind: "crashed", name: spec.name, why, restartInMs });
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (stopping) return;
        launch(spec, streak + 1);
        listener?.({ kind: "restarted", name: spec.name });
      }, restartInMs);
      timers.add(timer);
    });
  };
  s.server?.onEvent((e) =>
    listener?.(e.kind === "crashed" ? { kind: "crashed", name: "nats-server", why: e.why, restartInMs: e.restartInMs } : { kind: "restarted", name: "nats-server" }),
  );
  await rm(join(s.dataDir, VIZ_URL_FILE), { force: true }); // a stale address of an earlier stack
  for (const spec of specs) launch(spec, 0);
  const workerIds = s.opts.workers.map((w) => w.env.MOONMIND_WORKER_ID).filter((id): id is string => id !== undefined);
  await untilWorkersUp(s.url, workerIds, 60_000);
  const vizUrl = await untilFileReads(join(s.dataDir, VIZ_URL_FILE), () => children.get("viz")?.exitCode !== null, 30_000);

  const graceMs = s.opts.stopGraceMs ?? s.config.env.MOONMIND_STOP_GRACE_MS + s.config.env.MOONMIND_KILL_GRACE_MS + 10_000;
  return {
    url: s.url,
    ownServer: s.server !== undefined,
    dataDir: s.dataDir,
    report: s.report,
    children,
    vizUrl,
    onChildEvent: (cb) => {
      listener = cb;
    },
    stop: () =>
      (stopping ??= (async () => {
        for (const t of timers) clearTimeout(t);
        // Actors first (they drain through the server), the server last.
        await Promise.all([...children.values()].map((child) => terminate(child, graceMs)));
        await s.release();
      })()),
  };
}

/** The file's trimmed text once it exists; undefined if `gaveUp()` says so first or after `timeoutMs`. */
async function untilFileReads(file: string, gaveUp: () => boolean, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, "utf8").catch(() => undefined);
    if (text?.trim()) return text.trim();
    if (gaveUp() || Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL to its whole group past the grace: a stop always ends. */
function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

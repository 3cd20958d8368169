/**
 * The ground a chaos run stands on: a temporary directory holding a file-storage nats-server
 * (restartable on the same port and store), a git repository, a codex login volume, the ledger
 * directory the stand-in agent writes to, and the actors' logs.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.js";
import { connectNats } from "../../src/nats/connect.js";
import { provision } from "../../src/nats/provision.js";
import { startNatsServer, type NatsServer } from "../../src/nats/server.js";
import { FAKE_CODEX, makeRepo } from "../helpers/stack.js";

export interface ChaosStack {
  dir: string;
  url: string;
  repo: string;
  ledgerDir: string;
  logDir: string;
  /** The environment every actor shares; a worker adds its id and data dir. */
  env: Record<string, string>;
  serverPid(): number | undefined;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Stops the server (if up) and, unless `keep`, removes the directory. */
  close(keep: boolean): Promise<void>;
}

export async function createChaosStack(concurrency: number): Promise<ChaosStack> {
  const dir = await mkdtemp(join(tmpdir(), "moonmind-chaos-"));
  const storeDir = join(dir, "nats-store");
  const ledgerDir = join(dir, "ledger");
  const logDir = join(dir, "logs");
  const volume = join(dir, "codex-auth");
  await Promise.all([mkdir(ledgerDir), mkdir(logDir), mkdir(volume)]);
  await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
  const repo = await makeRepo(join(dir, "repo"));
  const serverLog = join(logDir, "nats-server.log");
  let server: NatsServer | undefined = await startNatsServer({ storeDir, logFile: serverLog });
  const port = server.port;

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? dir,
    NATS_URL: server.url,
    MOONMIND_DATA_DIR: join(dir, "var"),
    MOONMIND_LOG_LEVEL: "warn",
    MOONMIND_CODEX_BIN: FAKE_CODEX,
    CODEX_VOLUME_PATH: volume,
    MOONMIND_ALLOW_LOCAL_REPOS: "true",
    MOONMIND_AGENT_SANDBOX: "none",
    MOONMIND_WORKER_SHARDS: "0-2",
    MOONMIND_WORKER_CONCURRENCY: String(concurrency),
    MOONMIND_ACK_WAIT_MS: "2000",
    MOONMIND_HEARTBEAT_MS: "300",
    MOONMIND_WORKER_TTL_MS: "1500",
    MOONMIND_RETRY_BACKOFF_MS: "100",
    MOONMIND_RETRY_BACKOFF_MAX_MS: "500",
    MOONMIND_LOG_BATCH_MS: "50",
    MOONMIND_KILL_GRACE_MS: "500",
    MOONMIND_STOP_GRACE_MS: "2000",
  };
  const nc = await connectNats({ servers: server.url, name: "chaos-provision" });
  try {
    await provision(nc, loadConfig(env));
  } finally {
    await nc.close();
  }

  const stack: ChaosStack = {
    dir,
    url: server.url,
    repo,
    ledgerDir,
    logDir,
    env,
    serverPid: () => server?.pid,
    async stopServer() {
      const s = server;
      server = undefined;
      await s?.stop();
    },
    async startServer() {
      if (!server) server = await startNatsServer({ storeDir, port, logFile: serverLog });
    },
    async close(keep) {
      await stack.stopServer();
      if (!keep) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  return stack;
}

/**
 * The ground a chaos run stands on: a temporary directory holding file-storage nats-server(s),
 * a git repository, a codex login volume, the ledger directory the stand-in agent writes to, and
 * the actors' logs.
 *
 * One server (the default) is restartable on the same port and store. Three servers form a
 * cluster on loopback (fixed client, route and monitoring ports, each its own store and log),
 * the streams at R3 (MOONMIND_STREAM_REPLICAS=3) and NATS_URL naming all three: one node can be
 * SIGKILLed and brought back on the same port, store and conf while the other two carry on.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadConfig, type Config } from "../../src/config.js";
import { connectNats } from "../../src/nats/connect.js";
import { provision } from "../../src/nats/provision.js";
import { startNatsServer, type NatsServer, type StartOptions } from "../../src/nats/server.js";
import { FAKE_CODEX, makeRepo } from "../helpers/stack.js";
import { freePort } from "../helpers/net.js";

/** A fresh cluster elects its meta leader and learns its peers within this; so does a restarted node catch up. */
const CLUSTER_READY_MS = 30_000;

export interface ChaosStack {
  dir: string;
  /** Every server's client URL, comma-separated. */
  url: string;
  repo: string;
  ledgerDir: string;
  logDir: string;
  /** The environment every actor shares; a worker adds its id and data dir. */
  env: Record<string, string>;
  /** How many nats-servers: 1, or 3 in a cluster. */
  servers: number;
  /** Fresh starts the cluster took until its meta group held every server (1 alone, and normally). */
  formAttempts: number;
  /** "nats-server" alone; "nats-server-<n>" (1-based) in a cluster. */
  nodeName(index: number): string;
  serverPid(index?: number): number | undefined;
  /** Stops every server (if up), keeping the stores. */
  stopServer(): Promise<void>;
  /** Starts every server that is down, on its port, store and conf. */
  startServer(): Promise<void>;
  /** SIGKILLs one node and reaps it; resolves with the pid killed (undefined: it was down). */
  killNode(index: number): Promise<number | undefined>;
  /** What a cluster node leads right now: `meta` and the streams whose leader it is (its /jsz; [] when unknown). */
  ledBy(index: number): Promise<string[]>;
  /** Starts the node again on its port, store and conf; in a cluster, resolves once it reports healthy (bounded). */
  startNode(index: number): Promise<void>;
  /** Stops the servers (if up) and, unless `keep`, removes the directory. */
  close(keep: boolean): Promise<void>;
}

interface Node {
  name: string;
  /** What the node is (re)started with: after the first start, always its port. */
  opts: StartOptions;
  /** Cluster nodes: their monitoring port (/healthz, /jsz) and `server_name`. */
  monitorPort?: number;
  serverName?: string;
  server?: NatsServer;
}

export async function createChaosStack(concurrency: number, servers = 1): Promise<ChaosStack> {
  const dir = await mkdtemp(join(tmpdir(), "moonmind-chaos-"));
  const ledgerDir = join(dir, "ledger");
  const logDir = join(dir, "logs");
  const volume = join(dir, "codex-auth");
  await Promise.all([mkdir(ledgerDir), mkdir(logDir), mkdir(volume)]);
  await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
  const repo = await makeRepo(join(dir, "repo"));

  const nodes: Node[] = servers === 1 ? [{ name: "nats-server", opts: { storeDir: join(dir, "nats-store"), logFile: join(logDir, "nats-server.log") } }] : await clusterNodes(dir, logDir, servers);
  const stack: ChaosStack = {
    dir,
    url: "",
    repo,
    ledgerDir,
    logDir,
    env: {},
    servers: nodes.length,
    formAttempts: 1,
    nodeName: (i) => nodes[i]!.name,
    serverPid: (i = 0) => nodes[i]?.server?.pid,
    async stopServer() {
      await Promise.all(nodes.map((n) => stopNode(n)));
    },
    async startServer() {
      await Promise.all(nodes.map((n) => startNode(n)));
    },
    async killNode(i) {
      const n = nodes[i]!;
      const pid = n.server?.pid;
      if (pid === undefined) return undefined;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      await stopNode(n); // reaps it and removes its run dir; the store dir stays
      return pid;
    },
    async ledBy(i) {
      const n = nodes[i]!;
      if (n.monitorPort === undefined || !n.server) return [];
      return leadership(n).catch(() => []);
    },
    async startNode(i) {
      const n = nodes[i]!;
      await startNode(n);
      if (n.monitorPort !== undefined) await waitHealthy(n, CLUSTER_READY_MS);
    },
    async close(keep) {
      await stack.stopServer();
      if (!keep) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  try {
    stack.formAttempts = await formCluster(stack, nodes);
    stack.url = nodes.map((n) => n.server!.url).join(",");
    stack.env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? dir,
      NATS_URL: stack.url,
      MOONMIND_DATA_DIR: join(dir, "var"),
      MOONMIND_LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? "warn",
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
      ...(nodes.length > 1 ? { MOONMIND_STREAM_REPLICAS: String(nodes.length) } : {}),
    };
    await provisionWhenReady(stack.url, loadConfig(stack.env), CLUSTER_READY_MS);
  } catch (err) {
    // What each server said, before its log goes with the directory.
    const said = nodes.length > 1 && !String((err as Error).message).startsWith("the cluster's meta group") ? await Promise.all(nodes.map((n) => describeNode(n))) : [];
    await stack.close(false);
    throw said.length > 0 ? new Error(`${(err as Error).message}\n${said.join("\n")}`, { cause: err }) : err;
  }
  return stack;
}

/** A server joins the meta group within this of its start (well under a second, measured). */
const FORM_MS = 10_000;
const FORM_ATTEMPTS = 3;

/**
 * Starts the servers; a cluster must form with every server in its meta group. Started all at
 * once, nats-server 2.10 sometimes does not (about one fresh start in ten here): two servers
 * elect a leader between them, the third follows it without ever being taken in as a peer, and
 * every R3 create fails "no suitable peers for placement" for good. So the first two start
 * together and form the group, then each further one joins it (20 of 20 formed, each step well
 * under a second). Should that still fail, nothing is stored yet: the servers are stopped, their
 * stores wiped, and it starts afresh (bounded). Returns the starts it took.
 */
async function formCluster(stack: ChaosStack, nodes: Node[]): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    if (nodes.length === 1) {
      await stack.startServer();
      return attempt;
    }
    let formed = true;
    for (let i = 0; i < nodes.length && formed; i++) {
      await startNode(nodes[i]!);
      if (i > 0) formed = await metaFormed(nodes.slice(0, i + 1), FORM_MS);
    }
    if (formed) return attempt;
    if (attempt >= FORM_ATTEMPTS) {
      const said = await Promise.all(nodes.map((n) => describeNode(n)));
      throw new Error(`the cluster's meta group did not take in all ${nodes.length} servers in ${attempt} fresh starts\n${said.join("\n")}`);
    }
    await stack.stopServer();
    await Promise.all(nodes.map((n) => rm(n.opts.storeDir!, { recursive: true, force: true })));
  }
}

/** Whether some server's /jsz names a meta leader with all of `nodes` peers of its group, within `timeoutMs`. */
async function metaFormed(nodes: Node[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const n of nodes) {
      const meta = await fetch(`http://127.0.0.1:${n.monitorPort}/jsz`, { signal: AbortSignal.timeout(1_000) })
        .then(async (r) => ((await r.json()) as Jsz).meta_cluster)
        .catch(() => undefined);
      if (meta?.leader && (meta.replicas?.length ?? 0) + 1 >= nodes.length) return true;
    }
    await sleep(200);
  }
  return false;
}

/** Three (or n) nodes on loopback: fixed ports, each its own store and log, routes to all. */
async function clusterNodes(dir: string, logDir: string, count: number): Promise<Node[]> {
  const ports = await distinctFreePorts(count * 3);
  const client = ports.slice(0, count);
  const route = ports.slice(count, 2 * count);
  const monitor = ports.slice(2 * count);
  const routes = route.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`)).join(", ");
  return client.map((port, i) => ({
    name: `nats-server-${i + 1}`,
    monitorPort: monitor[i]!,
    serverName: `chaos-n${i + 1}`,
    opts: {
      port,
      storeDir: join(dir, `nats-store-${i + 1}`),
      logFile: join(logDir, `nats-server-${i + 1}.log`),
      extraConf: [
        `server_name: chaos-n${i + 1}`,
        `http: ${JSON.stringify(`127.0.0.1:${monitor[i]}`)}`,
        `cluster { name: chaos, listen: ${JSON.stringify(`127.0.0.1:${route[i]}`)}, routes: [ ${routes} ] }`,
      ].join("\n"),
    },
  }));
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

async function startNode(n: Node): Promise<void> {
  if (n.server) return;
  n.server = await startNatsServer(n.opts);
  // Back on the same port, whichever port the first start picked.
  n.opts = { ...n.opts, port: n.server.port };
}

async function stopNode(n: Node): Promise<void> {
  const s = n.server;
  n.server = undefined;
  await s?.stop();
}

/** Waits until the node's /healthz says ok: JetStream current with the meta leader and its streams. */
async function waitHealthy(n: Node, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let said = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${n.monitorPort}/healthz`, { signal: AbortSignal.timeout(2_000) });
      said = `${res.status} ${(await res.text()).trim()}`;
      if (res.ok) return;
    } catch (err) {
      said = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${n.name} was not healthy ${timeoutMs} ms after its restart (last /healthz: ${said.slice(0, 300)})`);
}

interface Jsz {
  meta_cluster?: { leader?: string; replicas?: Array<{ name: string }> };
  account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string } }> }>;
}

async function leadership(n: Node): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${n.monitorPort}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(2_000) });
  const jsz = (await res.json()) as Jsz;
  const me = n.serverName;
  const streams = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []).filter((d) => d.cluster?.leader === me).map((d) => d.name);
  return [...(jsz.meta_cluster?.leader === me ? ["meta"] : []), ...streams.sort()];
}

/** A cluster node for a failure message: its meta view (/jsz) and the last warnings, errors and cluster lines of its log. */
async function describeNode(n: Node): Promise<string> {
  const meta = await fetch(`http://127.0.0.1:${n.monitorPort}/jsz`, { signal: AbortSignal.timeout(2_000) })
    .then(async (r) => JSON.stringify(((await r.json()) as { meta_cluster?: unknown }).meta_cluster ?? null))
    .catch((e: unknown) => `no /jsz (${(e as Error).message})`);
  const log = await readFile(n.opts.logFile!, "utf8").catch(() => "");
  const lines = log.split("\n").filter((l) => /\[(ERR|WRN|FTL)\]|JetStream cluster|peer/i.test(l)).slice(-12);
  return `${n.name} (pid ${n.server?.pid ?? "down"}, port ${n.opts.port}): meta ${meta}${lines.map((l) => `\n    ${l}`).join("")}`;
}

/** Not ready yet, on a cluster still electing its meta leader or learning its peers. */
function notReadyYet(err: unknown): boolean {
  for (let e = err as (Error & { cause?: unknown; code?: unknown; api_error?: { code?: number; err_code?: number } }) | undefined, d = 0; e && d < 5; e = e.cause as typeof e, d++) {
    const code = e.api_error?.code ?? (typeof e.code === "number" ? e.code : Number(e.code));
    if (code === 503 || code === 408) return true;
    if (/temporarily unavailable|no responders|timeout|timed out|insufficient resources|no suitable peers|not enabled|no leader|leader not/i.test(`${e.name} ${e.message}`)) return true;
  }
  return false;
}

/**
 * Provisions once the JetStream API answers: a fresh cluster refuses (503, "temporarily
 * unavailable", too few peers) until it has a meta leader and knows every peer. Bounded.
 */
async function provisionWhenReady(url: string, config: Config, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const nc = await connectNats({ servers: url, name: "chaos-provision" });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await provision(nc, config);
        return;
      } catch (err) {
        if (!notReadyYet(err) || Date.now() >= deadline) {
          throw new Error(`provisioning failed after ${attempt} attempt(s): ${(err as Error).message}`, { cause: err });
        }
        await sleep(Math.min(100 * attempt, 1_000));
      }
    }
  } finally {
    await nc.close();
  }
}

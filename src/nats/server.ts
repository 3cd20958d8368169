/**
 * Starts a local `nats-server -js` for `moonmind dev` and the tests: a temporary conf with
 * `port: -1` and a ports file, a store dir, a wait on the ports file that also watches for
 * an early exit, and a stop that always cleans up.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.js";
import { PROJECT_ROOT } from "../paths.js";

const LOCAL_BIN = join(PROJECT_ROOT, ".tools/nats-server/usr/sbin/nats-server");

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  pid: number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartOptions {
  /** Binary; default NATS_SERVER_BIN, then .tools/ (tools/install-nats-server.sh), then PATH. */
  bin?: string | undefined;
  /** JetStream store; default a fresh temporary directory removed on stop. */
  storeDir?: string | undefined;
  /** 0 or -1 picks a free port. */
  port?: number;
  host?: string;
  startTimeoutMs?: number;
  /** Extra lines appended to the generated conf. */
  extraConf?: string;
  /**
   * A conf of the operator's (the repository's nats.conf) included first: its users, permissions
   * and limits apply, while the address, ports file and store dir here override its own.
   */
  baseConf?: string | undefined;
  /** The server's environment (nats.conf `$VAR` references read it); default this process's. */
  env?: Record<string, string | undefined> | undefined;
  /** Where the server's own log goes; default discarded. */
  logFile?: string;
  /**
   * Its own process group: a Ctrl-C in the terminal (sent to the whole foreground group) does
   * not reach it, so the launcher can stop it last, after the actors that use it.
   */
  detached?: boolean;
}

export function resolveNatsServerBin(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  if (existsSync(LOCAL_BIN)) return LOCAL_BIN;
  return "nats-server";
}

export async function startNatsServer(opts: StartOptions = {}): Promise<NatsServer> {
  const bin = resolveNatsServerBin(opts.bin);
  const runDir = await mkdtemp(join(tmpdir(), "moonmind-nats-"));
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? join(runDir, "store");
  await mkdir(storeDir, { recursive: true });
  const confPath = join(runDir, "nats.conf");
  const port = opts.port === undefined || opts.port === 0 ? -1 : opts.port;
  if (opts.baseConf) await copyFile(opts.baseConf, join(runDir, "base.conf"));
  await writeFile(
    confPath,
    [
      // nats-server resolves includes against the including file's directory.
      opts.baseConf ? `include "base.conf"` : "",
      `listen: ${JSON.stringify(`${opts.host ?? "127.0.0.1"}:${port}`)}`,
      opts.baseConf ? `http: ${JSON.stringify(`${opts.host ?? "127.0.0.1"}:-1`)}` : "",
      `ports_file_dir: ${JSON.stringify(runDir)}`,
      `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
      opts.logFile ? `log_file: ${JSON.stringify(opts.logFile)}` : "",
      opts.extraConf ?? "",
    ].join("\n"),
  );

  const child = spawn(bin, ["-c", confPath], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: opts.detached ?? false,
    ...(opts.env ? { env: opts.env } : {}),
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4_000);
  });
  const cleanup = async () => {
    await rm(runDir, { recursive: true, force: true });
    if (ownStore) await rm(storeDir, { recursive: true, force: true });
  };

  let url: string;
  try {
    url = await waitForPortsFile(child, runDir, opts.startTimeoutMs ?? 10_000, () => stderr, bin);
  } catch (err) {
    child.kill("SIGKILL");
    await cleanup();
    throw err;
  }
  const parsedPort = Number(new URL(url).port);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await killAndWait(child, 5_000);
      await cleanup();
    })());
  return { url, port: parsedPort, storeDir, pid: child.pid ?? -1, stop, [Symbol.asyncDispose]: stop };
}

async function waitForPortsFile(
  child: ChildProcess,
  dir: string,
  timeoutMs: number,
  stderr: () => string,
  bin: string,
): Promise<string> {
  let exited: { code: number | null; error?: Error } | undefined;
  child.once("exit", (code) => (exited ??= { code }));
  child.once("error", (error) => (exited = { code: null, error }));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) {
      if ((exited.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
        throw new ConfigError(`nats-server not found (tried '${bin}')`, {
          remedy: "run tools/install-nats-server.sh, or set NATS_SERVER_BIN to a nats-server >= 2.10",
        });
      }
      const said = stderr().trim() || exited.error?.message || "";
      if (/malformed|corrupt|checksum|bad (?:index|magic)/i.test(said)) {
        throw new ConfigError(`nats-server could not open its JetStream store: ${said.slice(-500)}`, {
          remedy: "the store is damaged (e.g. two servers wrote it at once): move its directory aside and start again, e.g. mv var/nats var/nats.damaged",
        });
      }
      throw new Error(`nats-server exited early (code ${exited.code}): ${said}`);
    }
    const files = (await readdir(dir)).filter((f) => f.endsWith(".ports"));
    if (files[0]) {
      try {
        const ports = JSON.parse(await readFile(join(dir, files[0]), "utf8")) as { nats?: string[] };
        if (ports.nats?.[0]) return ports.nats[0];
      } catch {
        // written but not complete yet
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nats-server did not report its port within ${timeoutMs} ms: ${stderr().trim()}`);
}

async function killAndWait(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

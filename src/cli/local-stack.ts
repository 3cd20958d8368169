/**
 * The processes of a one-machine stack: a local nats-server (unless NATS_URL names one),
 * provisioning, intake and the given workers as child processes, and an ordered stop.
 * `moonmind dev` and `moonmind demo` both run on it.
 */
import type { ChildProcess } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Config } from "../config.js";
import { connectNats } from "../nats/connect.js";
import { provision, type ProvisionReport } from "../nats/provision.js";
import { startNatsServer, type NatsServer } from "../nats/server.js";
import { DEV_URL_FILE } from "../nats/url.js";
import { spawnActor } from "./commands/actor.js";

export interface WorkerSpec {
  name: string;
  env: Record<string, string>;
}

export interface LocalStack {
  url: string;
  ownServer: boolean;
  dataDir: string;
  report: ProvisionReport;
  children: Map<string, ChildProcess>;
  /** Called once when any child exits on its own. */
  onChildExit(cb: (name: string, why: string) => void): void;
  stop(): Promise<void>;
}

export async function startLocalStack(
  config: Config,
  opts: { baseEnv: NodeJS.ProcessEnv; workers: WorkerSpec[]; quiet?: boolean },
): Promise<LocalStack> {
  const dataDir = resolve(config.env.MOONMIND_DATA_DIR);
  await mkdir(dataDir, { recursive: true });
  let server: NatsServer | undefined;
  let url = config.env.NATS_URL;
  const urlFile = join(dataDir, DEV_URL_FILE);
  if (!url) {
    server = await startNatsServer({ storeDir: join(dataDir, "nats"), logFile: join(dataDir, "nats-server.log") });
    url = server.url;
    await writeFile(urlFile, `${url}\n`);
  }
  const nc = await connectNats({ servers: url, name: "moonmind-local-stack" });
  const report = await provision(nc, config);
  await nc.close();

  const env: NodeJS.ProcessEnv = { ...opts.baseEnv, NATS_URL: url, MOONMIND_DATA_DIR: dataDir };
  const stdio = opts.quiet ? "pipe" : "inherit";
  const children = new Map<string, ChildProcess>();
  children.set("intake", spawnActor("intake", env, { detached: true, stdio }));
  for (const w of opts.workers) children.set(w.name, spawnActor("worker", { ...env, ...w.env }, { detached: true, stdio }));
  if (opts.quiet) for (const child of children.values()) drainOutput(child);

  let stopping: Promise<void> | undefined;
  let exitListener: ((name: string, why: string) => void) | undefined;
  for (const [name, child] of children) {
    child.once("exit", (code, signal) => {
      if (!stopping) exitListener?.(name, signal ?? `code ${code}`);
    });
  }
  return {
    url,
    ownServer: server !== undefined,
    dataDir,
    report,
    children,
    onChildExit: (cb) => {
      exitListener = cb;
    },
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all([...children.values()].map((child) => terminate(child)));
        if (server) {
          await server.stop();
          await rm(urlFile, { force: true });
        }
      })()),
  };
}

function terminate(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** A quiet stack still reads its children's output, so a full pipe never blocks them. */
function drainOutput(child: ChildProcess): void {
  child.stdout?.resume();
  child.stderr?.resume();
}

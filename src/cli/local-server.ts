/**
 * The local stack's own nats-server, kept running. An exit nobody asked for (the process killed,
 * or crashed) is reported and the server started again on the same port and store, with the
 * actors' backoff, and the lock and `nats.url` then name the new process. The actors need
 * nothing: their connections reconnect by themselves. `stop()` ends the watch and stops the
 * server (the stack calls it last, after the actors); a second call awaits the first.
 *
 * The server is a child of this process, which reaps it at once: a pid that no longer answers
 * signal 0 is an exit. (src/nats/server.ts hands out only the pid, so the watch polls it.)
 */
import { open, rm, stat, writeFile } from "node:fs/promises";
import { retryDelayMs } from "../backoff.js";
import { startNatsServer, type NatsServer } from "../nats/server.js";
import { processAlive as alive } from "../runtimes/procfs.js";

export type ServerEvent =
  | { kind: "crashed"; why: string; restartInMs: number }
  | { kind: "restarted"; pid: number; url: string };

export interface KeptServer {
  readonly url: string;
  readonly port: number;
  /** The server's current process. */
  readonly pid: number;
  onEvent(cb: (e: ServerEvent) => void): void;
  stop(): Promise<void>;
}

export interface KeepOptions {
  storeDir: string;
  logFile: string;
  /** Where the stack publishes the server's URL for the CLI and other terminals. */
  urlFile: string;
  /** Records the current server's pid (the data dir lock), so a successor can stop it. */
  recordPid: (pid: number) => void;
  /** How often the pid is looked at; default 200 ms. */
  watchMs?: number;
}

const RESTART = { baseMs: 1_000, maxMs: 30_000 } as const;
/** A server that ran this long before it died starts its backoff afresh. */
const HEALTHY_AFTER_MS = 60_000;

export async function keepNatsServer(opts: KeepOptions): Promise<KeptServer> {
  const start = (port?: number) => startNatsServer({ storeDir: opts.storeDir, logFile: opts.logFile, detached: true, ...(port === undefined ? {} : { port }) });
  let server: NatsServer = await start();
  const url = server.url;
  const port = server.port;
  let startedAt = Date.now();
  let failures = 0;
  let listener: ((e: ServerEvent) => void) | undefined;
  let stopping: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const publish = async (s: NatsServer) => {
    opts.recordPid(s.pid);
    await writeFile(opts.urlFile, `${url}\n`);
  };
  await publish(server).catch(async (err: unknown) => {
    await server.stop();
    throw err;
  });

  /** `ranHealthy`: the server that died had run long enough to start the backoff afresh. */
  const scheduleRestart = (why: string, ranHealthy: boolean) => {
    const streak = ranHealthy ? 0 : failures;
    failures = streak + 1;
    const restartInMs = retryDelayMs(failures, RESTART);
    listener?.({ kind: "crashed", why, restartInMs });
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!stopping) restarting = restart().finally(() => (restarting = undefined));
    }, restartInMs);
  };

  const restart = async () => {
    let next: NatsServer;
    const logFrom = await stat(opts.logFile).then((s) => s.size, () => 0);
    try {
      next = await start(port);
    } catch (err) {
      // With a log file the server says why on it, not on stderr.
      const said = await fatalLine(opts.logFile, logFrom);
      const why = `${(err as Error).message.replace(/[:\s]+$/, "")}${said ? `: ${said}` : ""}`;
      if (!stopping) scheduleRestart(`could not start it again on port ${port}: ${why}`, false);
      return;
    }
    if (stopping) {
      await next.stop();
      return;
    }
    server = next;
    startedAt = Date.now();
    // It runs either way: a lock or nats.url that cannot be written must not start a second one.
    await publish(next).catch(() => undefined);
    listener?.({ kind: "restarted", pid: next.pid, url });
  };

  const watch = setInterval(() => {
    if (stopping || restarting || retryTimer || alive(server.pid)) return;
    const dead = server;
    // Its temporary conf and ports file; the store stays.
    void dead.stop().catch(() => undefined);
    scheduleRestart(`pid ${dead.pid}, not stopped by this launcher; its log: ${opts.logFile}`, Date.now() - startedAt > HEALTHY_AFTER_MS);
  }, opts.watchMs ?? 200);
  watch.unref();

  return {
    url,
    port,
    get pid() {
      return server.pid;
    },
    onEvent: (cb) => {
      listener = cb;
    },
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(watch);
        clearTimeout(retryTimer);
        await restarting;
        await server.stop();
        await rm(opts.urlFile, { force: true });
      })()),
  };
}

/** The last fatal or error line the server logged from `offset` on, without its pid and time. */
async function fatalLine(logFile: string, offset: number): Promise<string | undefined> {
  try {
    const file = await open(logFile, "r");
    try {
      const { size } = await file.stat();
      const from = Math.max(offset, size - 16_384);
      const buf = Buffer.alloc(Math.max(0, size - from));
      await file.read(buf, 0, buf.length, from);
      const line = buf.toString("utf8").split("\n").filter((l) => /\[(FTL|ERR)\]/.test(l)).at(-1);
      return line?.replace(/^.*?\[(FTL|ERR)\]\s*/, "");
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}

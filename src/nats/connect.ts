/** One way to connect: reconnect forever, a name per process, optional .creds. */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as natsConnect } from "@nats-io/transport-node";
import { credsAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { ConfigError } from "../errors.js";
import type { Logger } from "../logger.js";
import { isJetStreamAway } from "./errors.js";
import { displayUrl, splitServerLogin } from "./url.js";

const UNREACHABLE_REMEDY = "start the stack with `npm start`, or set NATS_URL to a reachable server";

/** No server answered at the address given (as opposed to a refused login or an unreadable .creds file). */
export class NatsUnreachableError extends ConfigError {
  override name = "NatsUnreachableError";
}

export interface ConnectOptions {
  servers: string;
  name: string;
  credsFile?: string | undefined;
  /** Give up the first connect after this long instead of waiting forever. */
  timeoutMs?: number;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  let authenticator;
  if (opts.credsFile) {
    try {
      authenticator = credsAuthenticator(readFileSync(opts.credsFile));
    } catch (err) {
      throw new ConfigError(`cannot read NATS_CREDS file ${opts.credsFile}`, {
        cause: err,
        remedy: "point NATS_CREDS at a readable .creds file or unset it",
      });
    }
  }
  const login = splitServerLogin(opts.servers);
  if ((login.user || login.token) && authenticator) {
    throw new ConfigError("NATS_URL names a login and NATS_CREDS names another", {
      remedy: "use one of them: the user part of NATS_URL, or a .creds file in NATS_CREDS",
    });
  }
  try {
    return await natsConnect({
      servers: login.servers,
      ...(login.user !== undefined ? { user: login.user, pass: login.pass } : {}),
      ...(login.token !== undefined ? { token: login.token } : {}),
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      timeout: opts.timeoutMs ?? 10_000,
      // The client otherwise builds an Error for every request to keep its async stack: about a
      // quarter of intake's CPU (profiled). Failures still carry their message and cause.
      noAsyncTraces: true,
      ...(authenticator ? { authenticator } : {}),
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === "AuthorizationError" || e.name === "UserAuthenticationExpiredError") {
      throw new ConfigError(`NATS at ${displayUrl(opts.servers)} refused the login: ${e.message}`, {
        cause: err,
        remedy: "check NATS_CREDS (or the credentials in NATS_URL) against the server's accounts",
      });
    }
    throw new NatsUnreachableError(`cannot connect to NATS at ${displayUrl(opts.servers)}: ${e.message}`, { cause: err, remedy: UNREACHABLE_REMEDY });
  }
}

export interface PatientConnectOptions extends ConnectOptions {
  /** Keep trying an unreachable server this long before giving up (0: one try). */
  waitMs: number;
  /** Told of every failed try that will be retried. */
  onRetry?: (attempt: number, err: Error) => void;
  /** Stops the waiting (a signal during start-up); the last error is then thrown. */
  signal?: AbortSignal;
}

/**
 * An actor's first connection: a server that is not up yet (a restart, a compose stack whose
 * nats starts after the worker) is waited for instead of ending the actor. A refused login or an
 * unreadable .creds file is not retried: waiting would not fix it.
 */
export async function connectPatiently(opts: PatientConnectOptions): Promise<NatsConnection> {
  const deadline = Date.now() + opts.waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectNats({ ...opts, timeoutMs: opts.timeoutMs ?? 5_000 });
    } catch (err) {
      if (!(err instanceof NatsUnreachableError) || Date.now() >= deadline || opts.signal?.aborted) throw err;
      opts.onRetry?.(attempt, err);
      const pause = Math.min(1_000 * attempt, 5_000, Math.max(0, deadline - Date.now()));
      await sleep(pause, undefined, opts.signal ? { signal: opts.signal } : {}).catch(() => undefined);
      if (opts.signal?.aborted) throw err;
    }
  }
}

/**
 * A start-up step that needs JetStream, tried again while JetStream is away for a moment (a
 * server restarting, a cluster electing new leaders after losing a node: no responders, timeouts,
 * 503) instead of ending the actor, up to `waitMs`; a refusal or a missing resource is thrown at
 * once, as is the last error once the wait is over or `signal` aborts.
 */
export async function whileJetStreamAway<T>(what: string, work: () => Promise<T>, o: { waitMs: number; signal?: AbortSignal; log?: Logger }): Promise<T> {
  const deadline = Date.now() + o.waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const pause = Math.min(250 * attempt, 2_000);
      if (!isJetStreamAway(err) || o.signal?.aborted || Date.now() + pause > deadline) throw err;
      o.log?.warn({ err: (err as Error).message, what, attempt, retryInMs: pause }, "JetStream is not answering yet: trying again");
      await sleep(pause, undefined, o.signal ? { signal: o.signal } : {}).catch(() => undefined);
    }
  }
}

/**
 * Whether the connection is up right now, followed from its status events: a stop with the
 * server gone skips the steps that would only wait for it.
 */
export function followConnected(nc: NatsConnection): () => boolean {
  let connected = !nc.isClosed();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "close") connected = false;
      else if (s.type === "reconnect") connected = true;
    }
  })().catch(() => undefined);
  return () => connected && !nc.isClosed();
}

/** Drains, bounded (with the server gone a drain would wait for it), then makes sure it is closed. */
export async function closeConnection(nc: NatsConnection, boundMs = 5_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([nc.drain(), new Promise((r) => (timer = setTimeout(r, boundMs)))]).catch(() => undefined);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}

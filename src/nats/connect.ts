/** One way to connect: reconnect forever, a name per process, optional .creds. */
import { readFileSync } from "node:fs";
import { connect as natsConnect } from "@nats-io/transport-node";
import { credsAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { ConfigError } from "../errors.js";

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
  try {
    return await natsConnect({
      servers: opts.servers.split(",").map((s) => s.trim()).filter(Boolean),
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      timeout: opts.timeoutMs ?? 10_000,
      ...(authenticator ? { authenticator } : {}),
    });
  } catch (err) {
    throw new ConfigError(`cannot connect to NATS at ${opts.servers}: ${(err as Error).message}`, {
      cause: err,
      remedy: "start the stack with `npm start`, or set NATS_URL to a reachable server",
    });
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

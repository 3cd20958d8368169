/**
 * The single-flight token broker for codex ChatGPT logins. Every run's codex is started with
 * `CODEX_REFRESH_TOKEN_URL_OVERRIDE=<broker.url>`, so each refresh comes here instead of going to
 * the vendor. A refresh token is spent at the vendor at most once across the fleet:
 *
 * - in this process, concurrent requests with one refresh token share one promise, and the
 *   answer is remembered by sha256(refresh token) for `rememberMs` (errors only briefly);
 * - across processes and machines, the work happens under the volume's lock in NATS KV
 *   (see refresh-exchange.ts): if the volume's refresh token is no longer the one asked for,
 *   somebody already rotated it and the volume's tokens are the answer; otherwise the request
 *   goes upstream and the rotated tokens are written to the volume before anyone is answered.
 *
 * Tokens are never logged; a log line carries at most the first 8 hex of a token's sha256.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "../logger.js";
import { CODEX_AUTH_FILE, RefreshRequestSchema, tokenHash } from "./codex-credentials.js";
import { CredentialStore } from "./credential-store.js";
import { RefreshExchange, jsonAnswer, type Answer, type AnswerKind, type BrokerStats } from "./refresh-exchange.js";
import { VolumeLock } from "./volume-lock.js";

export type { BrokerStats } from "./refresh-exchange.js";

export interface TokenBrokerOptions {
  /** The vendor's token endpoint. */
  upstreamUrl: string;
  /** The login volume and its credential file; `lockId` names it alike on every machine (default: its path). */
  volume: { dir: string; file?: string; lockId?: string };
  /** For the volume lock (bucket `auth_locks`, created when missing). */
  nc: NatsConnection;
  host?: string;
  /** 0 (default): a free port. */
  port?: number;
  /** How long an answer is kept for repeats of its refresh token. Default 1 h. */
  rememberMs?: number;
  /** How long an upstream error is kept. Default 5 s. */
  errorRememberMs?: number;
  /** Upstream call timeout; must stay well inside the lock's 30 s. Default 10 s. */
  upstreamTimeoutMs?: number;
  /** Longest wait for the volume lock. Default 20 s. */
  lockTimeoutMs?: number;
  /** Names this broker as the lock holder. */
  owner?: string;
  replicas?: number;
  fetch?: typeof fetch;
  now?: () => number;
  logger?: Logger;
}

interface Remembered {
  answer: Promise<Answer>;
  /** Infinity while in flight. */
  until: number;
}

const MAX_BODY_BYTES = 64 * 1024;
const HOUR_MS = 3_600_000;

export class TokenBroker {
  readonly stats: BrokerStats = { requests: 0, forwarded: 0, answeredFromMemory: 0, answeredFromVolume: 0, upstreamErrors: 0 };
  private readonly memory = new Map<string, Remembered>();
  /** A random path segment: only a holder of the URL can reach the broker. */
  private readonly path = `/${randomBytes(16).toString("hex")}/oauth/token`;
  private readonly now: () => number;
  private server: Server | undefined;
  private exchange: RefreshExchange | undefined;
  private address: string | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: TokenBrokerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The URL for CODEX_REFRESH_TOKEN_URL_OVERRIDE; throws before start(). */
  get url(): string {
    if (!this.address) throw new Error("token broker is not started");
    return this.address;
  }

  async start(): Promise<string> {
    if (this.address) return this.address;
    const lock = await VolumeLock.open(this.opts.nc, this.opts.replicas ?? 1);
    const store = new CredentialStore({
      dir: this.opts.volume.dir,
      file: this.opts.volume.file ?? CODEX_AUTH_FILE,
      lock,
      owner: this.opts.owner ?? `token-broker-${process.pid}`,
      ...(this.opts.volume.lockId === undefined ? {} : { lockId: this.opts.volume.lockId }),
      lockTimeoutMs: this.opts.lockTimeoutMs ?? 20_000,
    });
    this.exchange = new RefreshExchange({
      store,
      upstreamUrl: this.opts.upstreamUrl,
      upstreamTimeoutMs: this.opts.upstreamTimeoutMs ?? 10_000,
      fetch: this.opts.fetch ?? fetch,
      now: this.now,
      stats: this.stats,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 1_000;
    const host = this.opts.host ?? "127.0.0.1";
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(this.opts.port ?? 0, host, () => ok());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.address = `http://${host.includes(":") ? `[${host}]` : host}:${port}${this.path}`;
    this.opts.logger?.info({ port }, "token broker listening");
    return this.address;
  }

  /** Idempotent: stops accepting, lets in-flight refreshes finish (so locks are released), closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const server = this.server;
      if (!server) return;
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeIdleConnections();
      await Promise.allSettled([...this.memory.values()].filter((m) => m.until === Infinity).map((m) => m.answer));
      server.closeAllConnections();
      await closed;
      this.memory.clear();
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (new URL(req.url ?? "/", "http://x").pathname !== this.path) return send(res, jsonAnswer(404, { error: "not_found" }));
      if (req.method !== "POST") return send(res, jsonAnswer(405, { error: "method_not_allowed" }));
      const raw = await readBody(req);
      if (!raw) return send(res, jsonAnswer(413, { error: "invalid_request", error_description: "body too large" }));
      let parsed;
      try {
        parsed = RefreshRequestSchema.safeParse(JSON.parse(raw.toString("utf8")));
      } catch {
        parsed = undefined;
      }
      if (!parsed?.success) {
        return send(res, jsonAnswer(400, { error: "invalid_request", error_description: "expected a JSON refresh_token grant" }));
      }
      this.stats.requests++;
      send(res, await this.answer(parsed.data.refresh_token, raw, forwardedHeaders(req)));
    } catch (err) {
      this.opts.logger?.error({ err: (err as Error).message }, "token broker failed a request");
      if (!res.headersSent) send(res, jsonAnswer(500, { error: "server_error" }));
      else res.destroy();
    }
  }

  /** In-process single flight, keyed by the refresh token's hash. */
  private answer(refreshToken: string, raw: Buffer, headers: Record<string, string>): Promise<Answer> {
    const now = this.now();
    for (const [k, m] of this.memory) if (m.until <= now) this.memory.delete(k);
    const key = createHash("sha256").update(refreshToken).digest("hex");
    const known = this.memory.get(key);
    if (known) {
      this.stats.answeredFromMemory++;
      this.opts.logger?.debug({ token: key.slice(0, 8) }, "refresh answered from memory");
      return known.answer;
    }
    const exchange = this.exchange;
    if (!exchange) return Promise.resolve(jsonAnswer(503, { error: "temporarily_unavailable" }));
    const entry = { until: Infinity } as Remembered;
    entry.answer = exchange.exchange(refreshToken, raw, headers).then(
      ({ answer, kind }) => {
        this.settle(key, entry, kind);
        return answer;
      },
      (err: unknown) => {
        this.settle(key, entry, "unavailable");
        this.opts.logger?.warn({ token: tokenHash(refreshToken), err: (err as Error).message }, "refresh failed");
        return jsonAnswer(503, { error: "temporarily_unavailable", error_description: "token broker could not refresh; retry" });
      },
    );
    this.memory.set(key, entry);
    return entry.answer;
  }

  private settle(key: string, entry: Remembered, kind: AnswerKind): void {
    const keep = { tokens: this.opts.rememberMs ?? HOUR_MS, upstreamError: this.opts.errorRememberMs ?? 5_000, unavailable: 0 }[kind];
    if (keep <= 0) {
      if (this.memory.get(key) === entry) this.memory.delete(key);
    } else {
      entry.until = this.now() + keep;
    }
  }
}

function forwardedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["user-agent", "originator", "accept"]) {
    const v = req.headers[name];
    if (typeof v === "string") out[name] = v;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, answer: Answer): void {
  res.writeHead(answer.status, {
    "content-type": answer.contentType,
    "content-length": answer.body.length,
    "cache-control": "no-store",
  });
  res.end(answer.body);
}

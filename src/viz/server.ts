/**
 * `moonmind viz`: the live view's HTTP server. `/` is the page, `/api/events` the live state as
 * server-sent events (a snapshot, then each changed worker or job), `/api/*` the ops endpoints
 * (./api.ts). Bound to 127.0.0.1 unless MOONMIND_VIZ_HOST says otherwise: the page can cancel
 * jobs, so it is not put on a network by default.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdir, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Config } from "../config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../logger.js";
import { apiIndex, handleApi, type ApiReply } from "./api.js";
import { LiveModel, type LiveChange } from "./live.js";
import { buildPage } from "./page.js";
import { VIZ_URL_FILE } from "./url-file.js";

const MAX_BODY_BYTES = 16_384;
/** A comment line on every open stream this often, so proxies and the browser keep it open. */
const KEEPALIVE_MS = 15_000;

export class VizServer {
  private server: Server | undefined;
  private live: LiveModel | undefined;
  private page = "";
  private readonly streams = new Set<ServerResponse>();
  private keepalive: NodeJS.Timeout | undefined;
  private readonly stoppedSignal: Promise<void>;
  private markStopped!: () => void;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.stoppedSignal = new Promise((resolve) => (this.markStopped = resolve));
  }

  private get urlFile(): string {
    return join(this.config.env.MOONMIND_DATA_DIR, VIZ_URL_FILE);
  }

  /** The address it serves on, once started. */
  get url(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return "";
    const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}/`;
  }

  async start(): Promise<void> {
    const env = this.config.env;
    this.page = await buildPage();
    this.live = new LiveModel(this.nc, { historyMs: env.MOONMIND_VIZ_HISTORY_MS, maxJobs: env.MOONMIND_VIZ_MAX_JOBS, log: this.log });
    await this.live.start();
    this.live.onChange((c) => this.broadcast(c));
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err, url: req.url }, "viz request failed");
        if (!res.headersSent) send(res, { status: 500, body: { error: `the live view failed: ${(err as Error).message}`, code: 500 } });
        else res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          err.code === "EADDRINUSE"
            ? new ConfigError(`port ${env.MOONMIND_VIZ_PORT} on ${env.MOONMIND_VIZ_HOST} is taken (another live view?)`, { remedy: "set MOONMIND_VIZ_PORT to a free port (0 picks any)" })
            : err,
        ),
      );
      server.listen(env.MOONMIND_VIZ_PORT, env.MOONMIND_VIZ_HOST, () => resolve());
    });
    this.keepalive = setInterval(() => {
      for (const res of this.streams) res.write(": keepalive\n\n");
    }, KEEPALIVE_MS);
    await mkdir(env.MOONMIND_DATA_DIR, { recursive: true });
    await writeFile(this.urlFile, `${this.url}\n`);
    this.log.info({ url: this.url }, "live view serving");
    // Printed for a person, on stderr with the logs: where to look.
    process.stderr.write(`moonmind viz: the live view is at ${this.url}\n`);
  }

  stop(_reason?: string): Promise<void> {
    return (this.stopping ??= (async () => {
      clearInterval(this.keepalive);
      for (const res of this.streams) res.end();
      this.streams.clear();
      await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
      this.server?.closeAllConnections();
      await rm(this.urlFile, { force: true });
      await this.live?.stop();
      await this.nc.drain().catch(() => undefined);
      this.markStopped();
    })());
  }

  stopped(): Promise<void> {
    return this.stoppedSignal;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    if (url.pathname === "/" && (method === "GET" || method === "HEAD")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...SECURITY_HEADERS });
      res.end(method === "HEAD" ? undefined : this.page);
      return;
    }
    if (url.pathname === "/healthz") return send(res, { status: 200, body: { ok: true } });
    if (url.pathname === "/api/events" && method === "GET") return this.openStream(res);
    if (url.pathname === "/api/live" && method === "GET") return send(res, { status: 200, body: this.live!.snapshot() });
    if (url.pathname === "/api" || url.pathname === "/api/") return send(res, apiIndex());
    if (!url.pathname.startsWith("/api/")) return send(res, { status: 404, body: { error: `nothing at ${url.pathname}: the page is at /, the API under /api`, code: 404 } });

    let body: Record<string, unknown> = {};
    if (method === "POST") {
      const refused = refuseCrossSite(req);
      if (refused) return send(res, refused);
      const parsed = await readJsonBody(req);
      if ("failed" in parsed) return send(res, parsed.failed);
      body = parsed.body;
    }
    send(res, await handleApi(this.nc, { method, path: url.pathname, query: url.searchParams, body }));
  }

  private openStream(res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" });
    res.write(`retry: 1000\nevent: snapshot\ndata: ${JSON.stringify(this.live!.snapshot())}\n\n`);
    this.streams.add(res);
    res.on("close", () => this.streams.delete(res));
  }

  private broadcast(c: LiveChange): void {
    if (this.streams.size === 0) return;
    const frame = `event: ${c.kind}\ndata: ${JSON.stringify(c.kind === "job" ? c.job : c.worker)}\n\n`;
    for (const res of this.streams) res.write(frame);
  }
}

const SECURITY_HEADERS = {
  // Everything the page needs is inline; nothing may be fetched from elsewhere.
  "content-security-policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function send(res: ServerResponse, reply: ApiReply): void {
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { "content-type": reply.contentType ?? "text/plain; charset=utf-8", "cache-control": "no-store" });
    res.end(reply.text);
    return;
  }
  res.writeHead(reply.status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(reply.body ?? null));
}

/**
 * Actions change runs: a page on another site must not make the operator's browser post them.
 * A JSON content type cannot be sent cross-site without a preflight this server never grants,
 * and an Origin, when the browser sends one, must be this server's own.
 */
function refuseCrossSite(req: IncomingMessage): ApiReply | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") return { status: 415, body: { error: "actions take a JSON body (content-type: application/json)", code: 415 } };
  const origin = req.headers.origin;
  if (origin && origin !== "null") {
    try {
      if (new URL(origin).host !== req.headers.host) throw new Error("cross-site");
    } catch {
      return { status: 403, body: { error: `actions are taken from this server's own page, not from ${origin}`, code: 403 } };
    }
  }
  return undefined;
}

async function readJsonBody(req: IncomingMessage): Promise<{ body: Record<string, unknown> } | { failed: ApiReply }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { failed: { status: 413, body: { error: `the body is larger than ${MAX_BODY_BYTES} bytes`, code: 413 } } };
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return { body: {} };
  try {
    const body: unknown = JSON.parse(text);
    if (body === null || typeof body !== "object" || Array.isArray(body)) return { failed: { status: 400, body: { error: "the body must be a JSON object", code: 400 } } };
    return { body: body as Record<string, unknown> };
  } catch (err) {
    return { failed: { status: 400, body: { error: `the body is not JSON: ${(err as Error).message}`, code: 400 } } };
  }
}

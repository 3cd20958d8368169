/**
 * A scripted stand-in for the three model vendors' HTTP APIs (OpenAI Responses, Anthropic Messages,
 * Gemini) on one loopback port, for the offline demo and the tests: it lets them drive the REAL
 * pinned codex / claude / gemini CLIs end to end. It is never a real model: it only follows the
 * `write <path>: <text>` / `say <text>` directives in the job prompt (see script.ts).
 *
 * Routes: OpenAI Responses (`POST /v1/responses`: codex with a custom provider), Anthropic Messages
 * (`HEAD /`, `POST /v1/messages`: claude with ANTHROPIC_BASE_URL), Gemini
 * (`POST /v1beta/models/<m>:generateContent|streamGenerateContent`: gemini with GOOGLE_GEMINI_BASE_URL),
 * an OAuth token endpoint (`POST /oauth/token`) and the ChatGPT backend calls codex makes in ChatGPT
 * mode (`/backend-api/...`). Anything else: 404, recorded as "other".
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { anthropicEvents, anthropicMessage, anthropicUnauthorized } from "./anthropic.js";
import { geminiGenerate, geminiTurn, geminiUnauthorized } from "./gemini.js";
import { readBody, sendJson, sendSse } from "./http.js";
import { obj, str, type Obj } from "./json.js";
import { createIssuer, type OAuthIssuer } from "./oauth.js";
import { chatgptBackend, openaiTurn, openaiUnauthorized } from "./openai.js";

export type { IssuedLogin, OAuthIssuer } from "./oauth.js";
export { parseScript, shQuote, writeCommand, type Script } from "./script.js";

export type Vendor = "openai" | "anthropic" | "gemini";

export interface RecordedRequest {
  vendor: Vendor | "oauth" | "other";
  method: string;
  /** The request target as sent, query included (e.g. `/v1/messages?beta=true`). */
  path: string;
  /** The Authorization header, verbatim. */
  authorization?: string;
  /** `x-api-key` (claude with an API key) or `x-goog-api-key` (gemini), verbatim. */
  apiKey?: string;
  body: unknown;
}

export interface ModelServer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Every request, in order. */
  requests: RecordedRequest[];
  /** While on, that vendor's model endpoint answers HTTP 401, as the real vendor does for a dead login. */
  failAuth(vendor: Vendor | "all", on: boolean): void;
  /**
   * The next `count` model calls of that vendor answer 429 as its plan's usage limit does, resetting
   * `resetInSeconds` from now (or, for codex, saying no reset when it is omitted).
   */
  usageLimit(vendor: Vendor, opts: { count: number; resetInSeconds?: number }): void;
  oauth: OAuthIssuer;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Each vendor's usage-limit answer, as the real APIs send it (docs/runtimes.md, "Usage limits"). */
function usageLimitAnswer(vendor: Vendor, resetInSeconds: number | undefined): { headers: Record<string, string>; body: Obj } {
  const reset = resetInSeconds === undefined ? undefined : Math.floor(Date.now() / 1000) + resetInSeconds;
  if (vendor === "openai") {
    return {
      headers: {},
      body: { error: { type: "usage_limit_reached", message: "The usage limit has been reached", plan_type: "plus", ...(reset ? { resets_at: reset, resets_in_seconds: resetInSeconds } : {}) } },
    };
  }
  if (vendor === "anthropic") {
    return {
      headers: reset ? { "anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": String(reset), "anthropic-ratelimit-unified-representative-claim": "five_hour" } : {},
      body: { type: "error", error: { type: "rate_limit_error", message: "This request would exceed your account's rate limit. Please try again later." } },
    };
  }
  return {
    headers: {},
    body: {
      error: {
        code: 429,
        message: "You exceeded your current quota, please check your plan and billing details.",
        status: "RESOURCE_EXHAUSTED",
        // A daily quota: the CLI gives up at once (TerminalQuotaError) instead of retrying for minutes.
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [{ quotaMetric: "generativelanguage.googleapis.com/generate_content_requests", quotaId: "GenerateRequestsPerDayPerProjectPerModel" }],
          },
          ...(resetInSeconds === undefined ? [] : [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: `${resetInSeconds}s` }]),
        ],
      },
    },
  };
}

function classify(method: string, pathname: string): RecordedRequest["vendor"] {
  if (pathname === "/oauth/token") return "oauth";
  if (["/v1/responses", "/v1/models"].includes(pathname) || pathname.startsWith("/backend-api/")) return "openai";
  if ((method === "HEAD" && pathname === "/") || pathname.startsWith("/v1/messages")) return "anthropic";
  if (/^\/v1beta\/models\/[^/]+:(generateContent|streamGenerateContent|countTokens)$/.test(pathname)) return "gemini";
  return "other";
}

/** The vendors' own 401 bodies, so each CLI prints what it prints for a dead login. */
function unauthorized(vendor: Vendor, bearer: string | undefined, reason: "expired" | "unknown" | "failAuth"): Obj {
  if (vendor === "anthropic") return anthropicUnauthorized(bearer);
  if (vendor === "gemini") return geminiUnauthorized();
  return openaiUnauthorized(bearer, reason);
}

export async function startModelServer(opts: { accessTokenTtlSeconds?: number; host?: string; port?: number } = {}): Promise<ModelServer> {
  const requests: RecordedRequest[] = [];
  const failing = new Set<Vendor>();
  const limits = new Map<Vendor, { count: number; resetInSeconds?: number | undefined }>();
  const issuer = createIssuer(opts.accessTokenTtlSeconds ?? 3600);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? "GET";
    const target = req.url ?? "/";
    const pathname = new URL(target, "http://127.0.0.1").pathname;
    const vendor = classify(method, pathname);
    const body = await readBody(req);
    const { authorization } = req.headers;
    const apiKey = req.headers["x-api-key"] ?? req.headers["x-goog-api-key"];
    requests.push({ vendor, method, path: target, body,
      ...(authorization === undefined ? {} : { authorization }),
      ...(typeof apiKey === "string" ? { apiKey } : {}) });

    if (vendor === "other") return sendJson(res, 404, { error: { message: `no route ${method} ${target}` } });
    if (vendor === "oauth") {
      const answer = issuer.refresh(str(obj(body).refresh_token));
      return sendJson(res, answer.status, answer.body);
    }
    if (vendor === "anthropic" && method === "HEAD") return void res.writeHead(200).end(); // claude's preconnect
    const b = obj(body);
    if (pathname.startsWith("/backend-api/")) {
      const account = req.headers["chatgpt-account-id"];
      return chatgptBackend(res, pathname.slice("/backend-api".length), b, typeof account === "string" ? account : "");
    }
    if (pathname === "/v1/models") return sendJson(res, 200, { object: "list", data: [], models: [] });

    // Only model calls check the login, so that 401s and refreshes come from the job's own turns
    // and not from codex's background polling of the backend.
    const bearer = authorization?.replace(/^Bearer\s+/i, "");
    const rejected = bearer === undefined ? undefined : issuer.rejectBearer(bearer);
    if (failing.has(vendor) || rejected) {
      return sendJson(res, 401, unauthorized(vendor, bearer, rejected ?? "failAuth"));
    }

    const limit = limits.get(vendor);
    if (limit && limit.count > 0 && pathname !== "/v1/messages/count_tokens" && !pathname.endsWith(":countTokens")) {
      limit.count--;
      const answer = usageLimitAnswer(vendor, limit.resetInSeconds);
      res.writeHead(429, { "content-type": "application/json", ...answer.headers });
      return void res.end(JSON.stringify(answer.body));
    }

    if (vendor === "openai") return sendSse(res, openaiTurn(b).map((e) => [str(e.type), e]));
    if (vendor === "anthropic") {
      if (pathname === "/v1/messages/count_tokens") return sendJson(res, 200, { input_tokens: 100 });
      const message = anthropicMessage(b);
      return b.stream === true ? sendSse(res, anthropicEvents(message)) : sendJson(res, 200, message);
    }
    if (pathname.endsWith(":countTokens")) return sendJson(res, 200, { totalTokens: 10 });
    if (pathname.endsWith(":streamGenerateContent")) return sendSse(res, [[undefined, geminiTurn(b)]]);
    sendJson(res, 200, geminiGenerate(b));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: { message: String(err) } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // a CLI killed mid-stream must not keep the server open
    }));
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failAuth(vendor, on) {
      for (const v of vendor === "all" ? (["openai", "anthropic", "gemini"] as const) : [vendor]) {
        if (on) failing.add(v);
        else failing.delete(v);
      }
    },
    usageLimit(vendor, opts) {
      limits.set(vendor, { count: opts.count, resetInSeconds: opts.resetInSeconds });
    },
    oauth: issuer,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

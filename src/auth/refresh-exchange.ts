/**
 * The cross-process half of the token broker: one refresh, decided under the volume's lock.
 *
 *   take the volume lock
 *   read the volume's auth.json
 *   ├─ its refresh token differs from the one asked for → somebody rotated it already:
 *   │    answer with the volume's tokens, nothing goes upstream
 *   └─ it is the one asked for (or the volume holds no ChatGPT login) → forward upstream verbatim
 *        ├─ 2xx with tokens → write the rotated tokens to the volume (compare-and-set on the
 *        │    digest read above), then answer with upstream's body
 *        └─ anything else   → answer with upstream's status and body; the volume is untouched
 *   release the lock
 *
 * Tokens derived from a refresh token the volume does not hold are passed on but never written:
 * the volume only moves forward along its own chain.
 */
import type { Logger } from "../logger.js";
import {
  RefreshResponseSchema,
  applyRefresh,
  isValidCodexAuth,
  tokenAnswer,
  tokenHash,
  tryParseCodexAuth,
} from "./codex-credentials.js";
import type { CredentialStore } from "./credential-store.js";

export interface BrokerStats {
  /** Well-formed refresh requests received. */
  requests: number;
  /** Requests sent to the vendor. */
  forwarded: number;
  /** Answered by joining a refresh in flight, or from a remembered answer. */
  answeredFromMemory: number;
  /** Answered with the volume's tokens because somebody else had already rotated the one asked for. */
  answeredFromVolume: number;
  /** Upstream refused, failed or answered without tokens. */
  upstreamErrors: number;
}

export interface Answer {
  status: number;
  body: Buffer;
  contentType: string;
}

/** Decides how long an answer may be remembered. */
export type AnswerKind = "tokens" | "upstreamError" | "unavailable";

export interface RefreshExchangeOptions {
  store: CredentialStore;
  upstreamUrl: string;
  upstreamTimeoutMs: number;
  fetch: typeof fetch;
  now: () => number;
  stats: BrokerStats;
  logger?: Logger;
}

export class RefreshExchange {
  constructor(private readonly opts: RefreshExchangeOptions) {}

  /** Throws only when the lock or the volume cannot be had; upstream's failures come back as answers. */
  exchange(refreshToken: string, raw: Buffer, headers: Record<string, string>): Promise<{ answer: Answer; kind: AnswerKind }> {
    const { store, stats, logger } = this.opts;
    const token = tokenHash(refreshToken);
    return store.locked(async (tx) => {
      const current = await tx.read();
      const auth = current && tryParseCodexAuth(current.bytes);
      if (auth && auth.tokens.refresh_token !== refreshToken) {
        stats.answeredFromVolume++;
        logger?.info({ token, volume: tokenHash(auth.tokens.refresh_token) }, "refresh answered from the volume");
        return { answer: jsonAnswer(200, tokenAnswer(auth, this.opts.now())), kind: "tokens" };
      }
      if (!auth) logger?.warn({ token, file: store.path }, "volume holds no ChatGPT login; forwarding without write-back");

      stats.forwarded++;
      const answer = await this.forward(raw, headers);
      if (!answer) {
        stats.upstreamErrors++;
        return { answer: jsonAnswer(502, { error: "upstream_unreachable", error_description: "token endpoint did not answer" }), kind: "unavailable" };
      }
      const tokens = answer.status >= 200 && answer.status < 300 ? parseTokens(answer.body) : undefined;
      if (!tokens) {
        stats.upstreamErrors++;
        logger?.warn({ token, status: answer.status }, "upstream refused the refresh; volume untouched");
        return { answer, kind: "upstreamError" };
      }
      if (current && auth) {
        const next = applyRefresh(current.bytes, tokens, new Date(this.opts.now()));
        const result = await tx.compareAndSet(current.digest, next, isValidCodexAuth);
        const rotated = tokens.refresh_token ? tokenHash(tokens.refresh_token) : token;
        logger?.[result === "written" ? "info" : "warn"]({ token, rotated, result }, "refresh forwarded; volume write-back");
      }
      return { answer, kind: "tokens" };
    });
  }

  /** Upstream's answer verbatim; undefined when it could not be reached in time. */
  private async forward(raw: Buffer, headers: Record<string, string>): Promise<Answer | undefined> {
    try {
      const res = await this.opts.fetch(this.opts.upstreamUrl, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: raw,
        signal: AbortSignal.timeout(this.opts.upstreamTimeoutMs),
      });
      const body = Buffer.from(await res.arrayBuffer());
      return { status: res.status, body, contentType: res.headers.get("content-type") ?? "application/json" };
    } catch (err) {
      this.opts.logger?.warn({ err: (err as Error).name }, "token endpoint unreachable");
      return undefined;
    }
  }
}

function parseTokens(body: Buffer) {
  try {
    const parsed = RefreshResponseSchema.safeParse(JSON.parse(body.toString("utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function jsonAnswer(status: number, body: unknown): Answer {
  return { status, body: Buffer.from(JSON.stringify(body)), contentType: "application/json" };
}

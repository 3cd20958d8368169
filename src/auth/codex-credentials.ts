/**
 * Pure helpers for codex's `auth.json` in ChatGPT mode (Codex CLI 0.169.0, see FINDINGS):
 * `{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{id_token,access_token,refresh_token,account_id},"last_refresh"}`.
 * No I/O, no clock of their own: time comes in as an argument. Fields we do not know are kept.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const CODEX_AUTH_FILE = "auth.json";

const token = z.string().min(1);

export const CodexTokensSchema = z.looseObject({
  id_token: token,
  access_token: token,
  refresh_token: token,
  account_id: z.string().nullish(),
});
export type CodexTokens = z.infer<typeof CodexTokensSchema>;

export const CodexAuthSchema = z.looseObject({
  auth_mode: z.literal("chatgpt").optional(),
  OPENAI_API_KEY: z.string().nullish(),
  tokens: CodexTokensSchema,
  last_refresh: z.string().optional(),
});
export type CodexAuth = z.infer<typeof CodexAuthSchema>;

/** What codex POSTs to its refresh endpoint. */
export const RefreshRequestSchema = z.looseObject({
  client_id: z.string().optional(),
  grant_type: z.literal("refresh_token"),
  refresh_token: token,
  refresh_reason: z.string().optional(),
});
export type RefreshRequest = z.infer<typeof RefreshRequestSchema>;

/** The vendor's answer; codex reads the three tokens and ignores the rest. */
export const RefreshResponseSchema = z.looseObject({
  access_token: token,
  id_token: token.optional(),
  refresh_token: token.optional(),
  expires_in: z.number().optional(),
});
export type RefreshResponse = z.infer<typeof RefreshResponseSchema>;

/** The answer the broker gives when it serves tokens it already has. */
export interface TokenAnswer {
  id_token: string;
  access_token: string;
  refresh_token: string;
  expires_in?: number;
}

export class CodexAuthError extends Error {
  override name = "CodexAuthError";
  readonly code = "CODEX_AUTH_INVALID";
}

/** Parses ChatGPT-mode auth.json; throws CodexAuthError (never echoing a value) when it is not one. */
export function parseCodexAuth(bytes: Uint8Array | string): CodexAuth {
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new CodexAuthError("auth.json is not JSON", { cause: err });
  }
  const parsed = CodexAuthSchema.safeParse(json);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => i.path.join(".") || "(root)").join(", ");
    throw new CodexAuthError(`auth.json is not a ChatGPT login with non-empty tokens (bad: ${where})`);
  }
  return parsed.data;
}

export function tryParseCodexAuth(bytes: Uint8Array | string): CodexAuth | undefined {
  try {
    return parseCodexAuth(bytes);
  } catch {
    return undefined;
  }
}

/** The validator for CredentialStore.compareAndSet: only a complete ChatGPT login may reach the volume. */
export function isValidCodexAuth(bytes: Uint8Array): boolean {
  return tryParseCodexAuth(bytes) !== undefined;
}

export function codexRefreshToken(bytes: Uint8Array | string): string | undefined {
  return tryParseCodexAuth(bytes)?.tokens.refresh_token;
}

/**
 * The new auth.json after a successful refresh: the tokens the vendor sent replace the old ones,
 * tokens it left out are kept, `last_refresh` is `now`, every other field is untouched.
 */
export function applyRefresh(current: Uint8Array | string, response: RefreshResponse, now: Date): Buffer {
  const auth = parseCodexAuth(current);
  const next: CodexAuth = {
    ...auth,
    tokens: {
      ...auth.tokens,
      access_token: response.access_token,
      ...(response.id_token ? { id_token: response.id_token } : {}),
      ...(response.refresh_token ? { refresh_token: response.refresh_token } : {}),
    },
    last_refresh: now.toISOString(),
  };
  return Buffer.from(`${JSON.stringify(next, null, 2)}\n`);
}

/** The refresh answer that hands out the tokens of `auth`, with expires_in from the access JWT when it has one. */
export function tokenAnswer(auth: CodexAuth, nowMs: number): TokenAnswer {
  const { id_token, access_token, refresh_token } = auth.tokens;
  const exp = jwtExpiry(access_token);
  return {
    id_token,
    access_token,
    refresh_token,
    ...(exp === undefined ? {} : { expires_in: Math.max(0, Math.floor(exp - nowMs / 1000)) }),
  };
}

/** `exp` (seconds since the epoch) of a JWT, signed or not; undefined when there is none. */
export function jwtExpiry(jwt: string): number | undefined {
  const payload = jwt.split(".")[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown };
    return typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/** The only form in which a token may appear in a log: the first 8 hex of its sha256. */
export function tokenHash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex").slice(0, 8);
}

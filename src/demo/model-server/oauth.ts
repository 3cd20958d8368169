/**
 * An OAuth issuer for codex in ChatGPT mode: mints ChatGPT-style logins, answers
 * `POST /oauth/token` refreshes (rotating, and refusing a reused refresh token as the real issuer
 * does) and tells the model endpoints which bearer tokens to refuse.
 */
import { randomUUID } from "node:crypto";
import { newId, type Obj } from "./json.js";

export interface IssuedLogin {
  id_token: string;
  access_token: string;
  refresh_token: string;
  account_id: string;
}

export interface OAuthIssuer {
  /**
   * A fresh ChatGPT-style login (unsigned JWTs: codex does not check signatures). The model
   * endpoint accepts its access token for accessTokenTtlSeconds; the JWT `exp` claim is 300 s later.
   */
  issue(accountId?: string): IssuedLogin;
  /** Every POST /oauth/token, in order. */
  refreshRequests: Array<{ refreshToken: string; outcome: "rotated" | "reused" | "invalid" }>;
  /** The newest refresh token issued for an account. */
  latestRefreshToken(accountId: string): string | undefined;
}

export interface Issuer extends OAuthIssuer {
  /** Why a JWT bearer is refused, if it is. Anything that is not a JWT is an API key: accepted. */
  rejectBearer(token: string): "expired" | "unknown" | undefined;
  refresh(refreshToken: string): { status: number; body: Obj };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const unsignedJwt = (claims: Obj) =>
  `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.${Buffer.from("unsigned").toString("base64url")}`;

export function isJwt(token: string): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    return typeof JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8")) === "object";
  } catch {
    return false;
  }
}

/**
 * Codex 0.169 refreshes a ChatGPT token before a request once its JWT `exp` is within 5 minutes
 * (measured: 310 s left → no refresh, 290 s → refresh), and a token born inside that window makes
 * it refresh in a tight loop (~50 refreshes/s; the turn never starts). So `exp` is "accepted
 * until + 300 s": codex starts refreshing just as the server stops accepting (as it would 5 min
 * before a real token ends), which keeps a TTL of a few seconds usable in tests.
 */
const CODEX_REFRESH_MARGIN_SECONDS = 300;

export function createIssuer(ttlSeconds: number): Issuer {
  const accessTokens = new Map<string, { accountId: string; acceptedUntil: number }>();
  const refreshTokens = new Map<string, { accountId: string; used: boolean }>();
  const latest = new Map<string, string>();
  const refreshRequests: OAuthIssuer["refreshRequests"] = [];

  const issue = (accountId: string = randomUUID()): IssuedLogin => {
    const iat = Math.floor(Date.now() / 1000);
    const acceptedUntil = iat + ttlSeconds;
    const exp = acceptedUntil + CODEX_REFRESH_MARGIN_SECONDS;
    const user = `user-${accountId}`;
    const auth = { chatgpt_account_id: accountId, chatgpt_plan_type: "pro", chatgpt_user_id: user };
    const common = { iss: "https://auth.openai.com", sub: user, iat, exp, "https://api.openai.com/auth": auth };
    const id_token = unsignedJwt({ ...common, aud: ["app_EMoamEEZ73f0CkXaXp7hrann"], email: "tester@example.invalid" });
    const access_token = unsignedJwt({ ...common, aud: ["https://api.openai.com/v1"], jti: randomUUID() });
    const refresh_token = newId("rt_");
    accessTokens.set(access_token, { accountId, acceptedUntil });
    refreshTokens.set(refresh_token, { accountId, used: false });
    latest.set(accountId, refresh_token);
    return { id_token, access_token, refresh_token, account_id: accountId };
  };

  return {
    issue,
    refreshRequests,
    latestRefreshToken: (accountId) => latest.get(accountId),
    rejectBearer(token) {
      if (!isJwt(token)) return undefined;
      const known = accessTokens.get(token);
      if (!known) return "unknown";
      return known.acceptedUntil <= Date.now() / 1000 ? "expired" : undefined;
    },
    refresh(refreshToken) {
      const known = refreshTokens.get(refreshToken);
      if (!known) {
        refreshRequests.push({ refreshToken, outcome: "invalid" });
        return { status: 400, body: { error: "invalid_grant", error_description: "Invalid refresh token" } };
      }
      if (known.used) {
        // The real issuer's body. Codex reads `error.code` and prints its own text: "Your access token
        // could not be refreshed because your refresh token was already used. Please log out and sign in again."
        refreshRequests.push({ refreshToken, outcome: "reused" });
        const message =
          "Your refresh token has already been used to generate a new access token. Please try signing in again.";
        const error = { message, type: "invalid_request_error", param: null, code: "refresh_token_reused" };
        return { status: 400, body: { error } };
      }
      known.used = true;
      refreshRequests.push({ refreshToken, outcome: "rotated" });
      const { id_token, access_token, refresh_token } = issue(known.accountId);
      const body = { id_token, access_token, refresh_token, token_type: "Bearer", expires_in: ttlSeconds };
      return { status: 200, body };
    },
  };
}

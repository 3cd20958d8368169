/** codex auth.json (ChatGPT mode): parse, validate, apply a refresh, answer from stored tokens. */
import { describe, expect, it } from "vitest";
import {
  CodexAuthError,
  applyRefresh,
  codexRefreshToken,
  isValidCodexAuth,
  jwtExpiry,
  parseCodexAuth,
  tokenAnswer,
  tokenHash,
} from "../../src/auth/codex-credentials.js";

const jwt = (claims: Record<string, unknown>) =>
  `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;

const auth = (tokens: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      auth_mode: "chatgpt",
      OPENAI_API_KEY: null,
      tokens: { id_token: jwt({ sub: "u" }), access_token: jwt({ exp: 2_000 }), refresh_token: "R0", account_id: "acct-1", ...tokens },
      last_refresh: "2026-01-01T00:00:00.000Z",
      ...extra,
    }),
  );

describe("parseCodexAuth", () => {
  it("reads a ChatGPT login and its refresh token", () => {
    const parsed = parseCodexAuth(auth());
    expect(parsed.auth_mode).toBe("chatgpt");
    expect(parsed.tokens.account_id).toBe("acct-1");
    expect(codexRefreshToken(auth())).toBe("R0");
    expect(isValidCodexAuth(auth())).toBe(true);
  });

  it.each([
    ["an emptied refresh token", auth({ refresh_token: "" })],
    ["an emptied access token", auth({ access_token: "" })],
    ["a missing id token", auth({ id_token: undefined })],
    ["an api-key login", Buffer.from(JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "sk-x" }))],
    ["no tokens at all", Buffer.from(JSON.stringify({ auth_mode: "chatgpt", tokens: null }))],
    ["truncated JSON", auth().subarray(0, 40)],
    ["an empty file", Buffer.alloc(0)],
  ])("rejects %s", (_what, bytes) => {
    expect(isValidCodexAuth(bytes)).toBe(false);
    expect(codexRefreshToken(bytes)).toBeUndefined();
    expect(() => parseCodexAuth(bytes)).toThrow(CodexAuthError);
  });

  it("never echoes a value in its error", () => {
    const bytes = auth({ refresh_token: "", access_token: "secret-access-value" });
    expect(() => parseCodexAuth(bytes)).toThrow(/tokens\.refresh_token/);
    try {
      parseCodexAuth(bytes);
    } catch (err) {
      expect((err as Error).message).not.toContain("secret-access-value");
    }
  });
});

describe("applyRefresh", () => {
  const now = new Date("2026-11-23T10:00:00.000Z");

  it("replaces the tokens, stamps last_refresh and keeps every other field", () => {
    const next = applyRefresh(auth({}, { custom: { a: 1 } }), { id_token: "I1", access_token: "A1", refresh_token: "R1", expires_in: 3600 }, now);
    const parsed = JSON.parse(next.toString("utf8"));
    expect(parsed).toEqual({
      auth_mode: "chatgpt",
      OPENAI_API_KEY: null,
      tokens: { id_token: "I1", access_token: "A1", refresh_token: "R1", account_id: "acct-1" },
      last_refresh: now.toISOString(),
      custom: { a: 1 },
    });
    expect(isValidCodexAuth(next)).toBe(true);
  });

  it("keeps the tokens the answer leaves out", () => {
    const next = parseCodexAuth(applyRefresh(auth(), { access_token: "A1" }, now));
    expect(next.tokens).toMatchObject({ access_token: "A1", refresh_token: "R0", id_token: jwt({ sub: "u" }) });
  });

  it("refuses to apply onto credentials that are not a login", () => {
    expect(() => applyRefresh(auth({ refresh_token: "" }), { access_token: "A1" }, now)).toThrow(CodexAuthError);
  });
});

describe("tokenAnswer and jwtExpiry", () => {
  it("derives expires_in from the access token's exp", () => {
    const answer = tokenAnswer(parseCodexAuth(auth()), 1_000_000); // now = 1000 s
    expect(answer).toEqual({ id_token: jwt({ sub: "u" }), access_token: jwt({ exp: 2_000 }), refresh_token: "R0", expires_in: 1_000 });
    expect(tokenAnswer(parseCodexAuth(auth()), 5_000_000).expires_in).toBe(0);
  });

  it("leaves expires_in out when the access token is not a JWT with exp", () => {
    expect(tokenAnswer(parseCodexAuth(auth({ access_token: "opaque" })), 0)).not.toHaveProperty("expires_in");
    expect(jwtExpiry("opaque")).toBeUndefined();
    expect(jwtExpiry("a.!!!.c")).toBeUndefined();
    expect(jwtExpiry(jwt({ exp: "soon" }))).toBeUndefined();
    expect(jwtExpiry(jwt({ exp: 42 }))).toBe(42);
  });

  it("hashes tokens for logs to 8 hex", () => {
    expect(tokenHash("R0")).toMatch(/^[0-9a-f]{8}$/);
    expect(tokenHash("R0")).not.toBe(tokenHash("R1"));
  });
});

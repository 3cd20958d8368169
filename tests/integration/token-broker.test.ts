/**
 * The single-flight token broker against a fake vendor token endpoint that honours each refresh
 * token exactly once (as OpenAI's does) and a real nats-server for the volume lock.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { applyRefresh, codexRefreshToken, isValidCodexAuth, jwtExpiry, parseCodexAuth, tokenHash } from "../../src/auth/codex-credentials.js";
import { CredentialStore, seedPrivateHome, sha256Hex } from "../../src/auth/credential-store.js";
import { TokenBroker, type TokenBrokerOptions } from "../../src/auth/token-broker.js";
import { VolumeLock } from "../../src/auth/volume-lock.js";
import { connectNats } from "../../src/nats/connect.js";
import { startStack, type TestStack } from "../helpers/stack.js";

const WAIT = { timeout: 5_000, interval: 10 };

const jwt = (claims: Record<string, unknown>) =>
  `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;

/** A vendor token endpoint: every refresh token works once; answers can be held back. */
class FakeTokenEndpoint {
  readonly seen: string[] = [];
  private readonly live = new Set<string>();
  private readonly spent = new Set<string>();
  private minted = 0;
  private gate: Promise<void> | undefined;
  private server: Server | undefined;
  url = "";

  constructor(private readonly prefix: string) {}

  /** A refresh token the vendor will honour once. */
  issue(): string {
    const token = `${this.prefix}-R${this.minted++}`;
    this.live.add(token);
    return token;
  }

  spend(token: string): void {
    this.live.delete(token);
    this.spent.add(token);
  }

  /** Holds every answer until the returned function is called. */
  hold(): () => void {
    let open!: () => void;
    this.gate = new Promise((ok) => (open = ok));
    return () => {
      this.gate = undefined;
      open();
    };
  }

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { refresh_token: string; grant_type: string; client_id: string };
      this.seen.push(body.refresh_token);
      await this.gate;
      const reply = (status: number, json: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8", "x-vendor": "fake" });
        res.end(JSON.stringify(json));
      };
      if (body.grant_type !== "refresh_token" || body.client_id !== "app_test") return reply(400, { error: "unsupported_grant_type" });
      if (this.spent.has(body.refresh_token)) {
        return reply(401, {
          error: { message: "Your refresh token has already been used to generate a new access token.", type: "invalid_request_error", code: "refresh_token_reused" },
        });
      }
      if (!this.live.has(body.refresh_token)) return reply(400, { error: "invalid_grant" });
      this.spend(body.refresh_token);
      const n = this.minted;
      reply(200, {
        id_token: jwt({ sub: "user-1", n }),
        access_token: jwt({ exp: Math.floor(Date.now() / 1000) + 60, n }),
        refresh_token: this.issue(),
        expires_in: 60,
      });
    });
    await new Promise<void>((ok) => this.server!.listen(0, "127.0.0.1", ok));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/oauth/token`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((ok) => this.server?.close(ok));
  }
}

let stack: TestStack;
let nc2: NatsConnection;
let cases = 0;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  stack = await startStack();
  nc2 = await connectNats({ servers: stack.server.url, name: "second-machine" });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});
afterAll(async () => {
  await nc2?.close().catch(() => undefined);
  await stack?.stop();
});

function authJson(refreshToken: string, n = 0): Buffer {
  return Buffer.from(
    JSON.stringify({
      auth_mode: "chatgpt",
      OPENAI_API_KEY: null,
      tokens: { id_token: jwt({ sub: "user-1", n }), access_token: jwt({ exp: 1, n }), refresh_token: refreshToken, account_id: "acct-1" },
      last_refresh: "2026-01-01T00:00:00.000Z",
    }),
  );
}

/** A fresh login volume holding a live refresh token, and the fake vendor that issued it. */
async function setup(): Promise<{ upstream: FakeTokenEndpoint; dir: string; r0: string }> {
  const upstream = new FakeTokenEndpoint(`case${++cases}`);
  await upstream.start();
  cleanup.push(() => upstream.stop());
  const dir = join(stack.dir, `codex-volume-${cases}`);
  await mkdir(dir, { recursive: true });
  const r0 = upstream.issue();
  await writeFile(join(dir, "auth.json"), authJson(r0), { mode: 0o600 });
  return { upstream, dir, r0 };
}

async function broker(upstream: FakeTokenEndpoint, dir: string, more: Partial<TokenBrokerOptions> = {}): Promise<TokenBroker> {
  const b = new TokenBroker({ upstreamUrl: upstream.url, volume: { dir }, nc: stack.nc, ...more });
  await b.start();
  cleanup.push(() => b.stop());
  return b;
}

interface Reply {
  status: number;
  body: string;
  contentType: string | null;
}

async function refresh(url: string, refreshToken: string): Promise<Reply> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_id: "app_test", grant_type: "refresh_token", refresh_token: refreshToken, refresh_reason: "expired" }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: await res.text(), contentType: res.headers.get("content-type") };
}

const tokensOf = (r: Reply) => JSON.parse(r.body) as { id_token: string; access_token: string; refresh_token: string; expires_in?: number };
const volumeAuth = async (dir: string) => parseCodexAuth(await readFile(join(dir, "auth.json")));

describe("token broker", () => {
  it("spends one refresh token once for 20 concurrent callers of one broker", async () => {
    const { upstream, dir, r0 } = await setup();
    const b = await broker(upstream, dir);
    const open = upstream.hold();
    const replies = Array.from({ length: 20 }, () => refresh(b.url, r0));
    await vi.waitFor(() => {
      expect(upstream.seen.length).toBeGreaterThanOrEqual(1);
      expect(b.stats.requests).toBe(20);
    }, WAIT);
    open();
    const answers = await Promise.all(replies);

    expect(upstream.seen).toEqual([r0]);
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    const r1 = tokensOf(answers[0]!).refresh_token;
    expect(r1).not.toBe(r0);
    expect(b.stats).toMatchObject({ forwarded: 1, answeredFromMemory: 19, answeredFromVolume: 0, upstreamErrors: 0 });

    const saved = await volumeAuth(dir);
    expect(saved.tokens).toMatchObject({ refresh_token: r1, access_token: tokensOf(answers[0]!).access_token, account_id: "acct-1" });
    expect((await stat(join(dir, "auth.json"))).mode & 0o777).toBe(0o600);
  });

  it("spends one refresh token once across two brokers on two connections sharing the volume", async () => {
    const { upstream, dir, r0 } = await setup();
    const a = await broker(upstream, dir, { owner: "broker-a" });
    const b = await broker(upstream, dir, { owner: "broker-b", nc: nc2 });
    const open = upstream.hold();
    const replies = Array.from({ length: 20 }, (_, i) => refresh((i % 2 === 0 ? a : b).url, r0));
    // Both brokers have every request in hand and one of them is at the vendor, waiting.
    await vi.waitFor(() => {
      expect(upstream.seen.length).toBeGreaterThanOrEqual(1);
      expect([a.stats.requests, b.stats.requests]).toEqual([10, 10]);
    }, WAIT);
    open();
    const answers = await Promise.all(replies);

    expect(upstream.seen).toEqual([r0]);
    expect(answers.map((x) => x.status)).toEqual(Array(20).fill(200));
    const r1 = tokensOf(answers[0]!).refresh_token;
    expect(new Set(answers.map((x) => tokensOf(x).refresh_token))).toEqual(new Set([r1]));
    expect(new Set(answers.map((x) => tokensOf(x).access_token)).size).toBe(1);
    expect(a.stats.forwarded + b.stats.forwarded).toBe(1);
    expect(a.stats.answeredFromVolume + b.stats.answeredFromVolume).toBe(1);
    expect(a.stats.answeredFromMemory + b.stats.answeredFromMemory).toBe(18);
    expect((await volumeAuth(dir)).tokens.refresh_token).toBe(r1);
  });

  it("forwards each link of a rotation chain once and leaves the newest token on the volume", async () => {
    const { upstream, dir, r0 } = await setup();
    const lines: string[] = [];
    const logger = pino({ level: "debug" }, new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) }));
    const a = await broker(upstream, dir, { logger });
    const b = await broker(upstream, dir, { nc: nc2, logger });

    const first = await refresh(a.url, r0);
    const r1 = tokensOf(first).refresh_token;
    const second = await refresh(b.url, r1);
    const r2 = tokensOf(second).refresh_token;
    const third = await refresh(a.url, r2);
    const r3 = tokensOf(third).refresh_token;
    expect(upstream.seen).toEqual([r0, r1, r2]);
    expect(new Set([r0, r1, r2, r3]).size).toBe(4);
    expect(a.stats.forwarded + b.stats.forwarded).toBe(3);
    expect((await volumeAuth(dir)).tokens.refresh_token).toBe(r3);

    // Late repeats of spent links get the answer already given (memory) or the newest (volume).
    expect((await refresh(a.url, r0)).body).toBe(first.body);
    expect(tokensOf(await refresh(b.url, r0)).refresh_token).toBe(r3);
    expect(upstream.seen).toHaveLength(3);

    const log = lines.join("");
    expect(log).toContain(tokenHash(r0));
    for (const secret of [r0, r1, r2, r3, tokensOf(third).access_token, tokensOf(third).id_token]) expect(log).not.toContain(secret);
  });

  it("passes an upstream refusal through verbatim, leaves the volume alone and remembers it only briefly", async () => {
    const { upstream, dir, r0 } = await setup();
    upstream.spend(r0); // somebody outside the fleet already used it
    let clock = Date.now();
    const b = await broker(upstream, dir, { now: () => clock, errorRememberMs: 2_000 });
    const before = await readFile(join(dir, "auth.json"));

    const reply = await refresh(b.url, r0);
    expect(reply.status).toBe(401);
    expect(reply.contentType).toBe("application/json; charset=utf-8");
    expect(JSON.parse(reply.body)).toMatchObject({ error: { code: "refresh_token_reused" } });
    expect(b.stats).toMatchObject({ forwarded: 1, upstreamErrors: 1 });
    expect(await readFile(join(dir, "auth.json"))).toEqual(before);

    expect(await refresh(b.url, r0)).toEqual(reply);
    expect(upstream.seen).toHaveLength(1);
    clock += 2_001;
    expect(await refresh(b.url, r0)).toEqual(reply);
    expect(upstream.seen).toHaveLength(2);
    expect(sha256Hex(await readFile(join(dir, "auth.json")))).toBe(sha256Hex(before));
  });

  it("gives a run seeded before a rotation the newest tokens from the volume, never an error", async () => {
    const { upstream, dir, r0 } = await setup();
    const runA = join(stack.dir, `run-a-${cases}`);
    const seeded = await seedPrivateHome(dir, runA, ["auth.json", "config.toml"]);
    expect(Object.keys(seeded)).toEqual(["auth.json"]);
    const seededToken = codexRefreshToken(await readFile(join(runA, "auth.json")));
    expect(seededToken).toBe(r0);

    // Meanwhile other runs rotate the login twice through a broker on another machine.
    const other = await broker(upstream, dir, { nc: nc2 });
    const r1 = tokensOf(await refresh(other.url, r0)).refresh_token;
    const r2 = tokensOf(await refresh(other.url, r1)).refresh_token;
    expect(upstream.seen).toEqual([r0, r1]);

    // Run A's token expires; its own worker's broker has never seen r0.
    const mine = await broker(upstream, dir);
    const reply = await refresh(mine.url, seededToken!);
    expect(reply.status).toBe(200);
    const tokens = tokensOf(reply);
    const onVolume = await volumeAuth(dir);
    expect(tokens).toMatchObject({ refresh_token: r2, access_token: onVolume.tokens.access_token, id_token: onVolume.tokens.id_token });
    // expires_in comes from the access token's exp (the fake vendor issues 60 s tokens).
    expect(Math.abs(tokens.expires_in! - (jwtExpiry(tokens.access_token)! - Date.now() / 1000))).toBeLessThan(2);
    expect(tokens.expires_in).toBeGreaterThan(50);
    expect(mine.stats).toMatchObject({ forwarded: 0, answeredFromVolume: 1 });
    expect(upstream.seen).toHaveLength(2);

    // After the run, its write-back of what it got is stale: the volume already holds it.
    const store = new CredentialStore({ dir, file: "auth.json", lock: await VolumeLock.open(stack.nc) });
    const privateNow = applyRefresh(await readFile(join(runA, "auth.json")), tokens, new Date());
    expect(await store.compareAndSet(seeded["auth.json"], privateNow, isValidCodexAuth)).toBe("stale");
    expect((await volumeAuth(dir)).tokens.refresh_token).toBe(r2);
  });

  it("answers only on its own path, only POSTed refresh grants, and forwards nothing else", async () => {
    const { upstream, dir, r0 } = await setup();
    const b = await broker(upstream, dir);
    const base = new URL(b.url);
    expect(base.hostname).toBe("127.0.0.1");
    const other = await fetch(`${base.origin}/oauth/token`, { method: "POST", body: "{}" });
    expect(other.status).toBe(404);
    expect((await fetch(b.url)).status).toBe(405);
    const bad = await fetch(b.url, { method: "POST", body: JSON.stringify({ grant_type: "password", refresh_token: r0 }) });
    expect(bad.status).toBe(400);
    expect((await fetch(b.url, { method: "POST", body: "not json" })).status).toBe(400);
    expect(upstream.seen).toEqual([]);
    expect(b.stats.requests).toBe(0);
  });

  it("answers 502 without remembering it when the vendor cannot be reached", async () => {
    const { upstream, dir, r0 } = await setup();
    const b = await broker(upstream, dir, { upstreamUrl: "http://127.0.0.1:1/unreachable" });
    const reply = await refresh(b.url, r0);
    expect(reply.status).toBe(502);
    expect(b.stats).toMatchObject({ forwarded: 1, upstreamErrors: 1 });
    await refresh(b.url, r0);
    expect(b.stats).toMatchObject({ forwarded: 2, answeredFromMemory: 0 });
    expect((await volumeAuth(dir)).tokens.refresh_token).toBe(r0);
  });
});

/**
 * One ChatGPT login, eight concurrent codex runs, access tokens that expire during the runs, and
 * an upstream token endpoint that honours each refresh token once (the real vendor's rule).
 * Real codex 0.169.0, fully offline: model and token endpoints are the local scripted stand-in.
 *
 * With the token broker: no logout, every refresh token reaches upstream once, and the volume
 * ends with the newest login. Without it (and with the one-run-per-login guard lifted), the same
 * runs spend one refresh token several times: the race the broker exists for.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Worker } from "../../actors/worker/worker.js";
import { startModelServer, type ModelServer } from "../../src/demo/model-server/index.js";
import { codexDemoConfig } from "../../src/demo/volumes.js";
import { createLogger } from "../../src/logger.js";
import { connectNats } from "../../src/nats/connect.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";

const JOBS = 8;
const log = createLogger({ actor: "test" }, "silent");
let stack: TestStack;
let events: EventLog;
let intake: Intake;

beforeAll(async () => {
  stack = await startStack();
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

interface RaceResult {
  model: ModelServer;
  volume: string;
  outcomes: string[];
  /** Why a run did not succeed, for the failure message. */
  errors: string[];
}

/**
 * Eight jobs at once on one login. `until` says which event ends a job for the test: with the
 * broker, its terminal event (a job may retry like any job); without it, the first setback.
 */
async function race(name: string, env: Record<string, string>, until: ReadonlyArray<string>): Promise<RaceResult> {
  // The server stops accepting an access token 2 s after issuing it; codex then refreshes.
  const model = await startModelServer({ accessTokenTtlSeconds: 2 });
  const volume = join(stack.dir, `volume-${name}`);
  await mkdir(volume, { recursive: true });
  await writeFile(join(volume, "config.toml"), `chatgpt_base_url = "${model.url}/backend-api/"\n${codexDemoConfig(model.url)}`);
  const login = model.oauth.issue(`acct-${name}`);
  const tokens = { id_token: login.id_token, access_token: login.access_token, refresh_token: login.refresh_token, account_id: login.account_id };
  await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "chatgpt", OPENAI_API_KEY: null, tokens, last_refresh: new Date().toISOString() }), { mode: 0o600 });

  const worker = new Worker(
    await connectNats({ servers: stack.server.url, name }),
    stack.config({
      MOONMIND_CODEX_BIN: "",
      CODEX_VOLUME_PATH: volume,
      MOONMIND_WORKER_ID: name,
      MOONMIND_WORKER_CONCURRENCY: String(JOBS),
      MOONMIND_CODEX_REFRESH_URL: `${model.url}/oauth/token`,
      MOONMIND_JOB_TIMEOUT_MS: "90000",
      ...env,
    }),
    log,
  );
  await worker.start();
  try {
    const ids = Array.from({ length: JOBS }, (_, i) => `${name}-${i}`);
    for (const [i, id] of ids.entries()) {
      await stack.js.publish(
        SUBJECTS.submit,
        // A tool call that outlasts the access token, so every run must refresh mid-job.
        JSON.stringify({ id, repository: stack.repo, affinityKey: id, instructions: `run sleep 3\nwrite OUT-${i}.md: ${i}\nsay done` }),
      );
    }
    const ends = await Promise.all(
      ids.map((id) => events.waitFor((e) => e.jobId === id && until.includes(e.type), 90_000)),
    );
    // Every setback on the way, with its reason, for the assertions and their messages.
    const errors = events.events
      .filter((e) => ids.includes(e.jobId))
      .flatMap((e) => ("error" in e && e.error ? [`${e.jobId} ${e.type}: ${e.error.code}: ${e.error.message}`] : []));
    return { model, volume, outcomes: ends.map((e) => e.type), errors };
  } finally {
    await worker.stop();
  }
}

describe("eight concurrent codex runs on one ChatGPT login", () => {
  it("with the broker: no logout, each refresh token reaches upstream once, the volume ends with the newest login", async () => {
    const { model, volume, outcomes, errors } = await race("broker", { MOONMIND_TOKEN_BROKER: "true" }, ["succeeded", "failed"]);
    try {
      // No logout: no run lost its login. (Any other setback is shown, and must not end a job.)
      expect(errors.filter((e) => /AUTH_EXPIRED|PREFLIGHT_FAILED/.test(e))).toEqual([]);
      expect({ outcomes, errors }).toEqual({ outcomes: Array(JOBS).fill("succeeded"), errors: expect.any(Array) });
      const refreshes = model.oauth.refreshRequests;
      expect(refreshes.length).toBeGreaterThan(0);
      expect(refreshes.filter((r) => r.outcome !== "rotated")).toEqual([]);
      expect(new Set(refreshes.map((r) => r.refreshToken)).size).toBe(refreshes.length);
      const auth = JSON.parse(await readFile(join(volume, "auth.json"), "utf8")) as { tokens: { refresh_token: string } };
      expect(auth.tokens.refresh_token).toBe(model.oauth.latestRefreshToken("acct-broker"));
    } finally {
      await model.stop();
    }
  }, 120_000);

  it("without the broker: the same runs spend one refresh token several times", async () => {
    const { model, outcomes } = await race("no-broker", { MOONMIND_TOKEN_BROKER: "false", MOONMIND_CODEX_MAX_PARALLEL: String(JOBS) }, [
      "succeeded",
      "failed",
      "retrying",
    ]);
    try {
      expect(model.oauth.refreshRequests.filter((r) => r.outcome === "reused").length).toBeGreaterThan(0);
      expect(outcomes).not.toEqual(Array(JOBS).fill("succeeded"));
    } finally {
      await model.stop();
    }
  }, 120_000);
});

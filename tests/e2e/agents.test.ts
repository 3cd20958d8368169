/**
 * The real pinned CLIs (codex, claude, gemini) run jobs through the whole stack — intake, a worker
 * serving all three runtimes, real git workspaces — against the local scripted model endpoint
 * that stands in for the vendors' APIs. Each CLI changes a file with its own tool call.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import type { PreflightReply } from "../../actors/worker/control.js";
import { Worker } from "../../actors/worker/worker.js";
import { startModelServer, type ModelServer, type Vendor } from "../../src/demo/model-server/index.js";
import { DEMO_KEY, prepareDemoVolumes } from "../../src/demo/volumes.js";
import { OBJECT_STORES, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

let stack: TestStack;
let model: ModelServer;
let intake: Intake;
let worker: Worker;
let events: EventLog;
const RUNTIMES = [
  ["codex", "openai"],
  ["claude", "anthropic"],
  ["gemini", "gemini"],
] as const satisfies ReadonlyArray<readonly [string, Vendor]>;

beforeAll(async () => {
  model = await startModelServer();
  stack = await startStack();
  const volumes = await prepareDemoVolumes(join(stack.dir, "volumes"), model.url);
  const env = {
    ...volumes,
    MOONMIND_CODEX_BIN: "", // the real pinned CLI, not the stand-in
    MOONMIND_WORKER_RUNTIMES: "codex,claude,gemini",
    MOONMIND_WORKER_ID: "w-agents",
    MOONMIND_WORKER_CONCURRENCY: "3",
    MOONMIND_JOB_TIMEOUT_MS: "120000",
    // The usage-limit answers below carry no reset time: the login waits this long instead.
    MOONMIND_USAGE_LIMIT_BACKOFF_MS: "4000",
  };
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack, env);
  worker = await startWorker(stack, "w-agents", env);
}, 120_000);

afterAll(() => stopAll(events, worker, intake, stack, model));

async function artifact(name: string): Promise<string> {
  const store = await new Objm(stack.nc).open(OBJECT_STORES.artifacts);
  return new TextDecoder().decode((await store.getBlob(name)) ?? new Uint8Array());
}

describe.each(RUNTIMES)("a %s job", (runtime, vendor) => {
  it("changes a file through the CLI's own tool call and ends succeeded with a patch", async () => {
    const id = `e2e-${runtime}`;
    await stack.js.publish(
      SUBJECTS.submit,
      JSON.stringify({ id, repository: stack.repo, runtime, instructions: `write NOTES.md: hello from ${runtime}\nsay wrote the notes` }),
    );
    const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 90_000);
    expect(done).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
    expect(await artifact(`${id}/changes.patch`)).toContain(`+hello from ${runtime}`);
    expect((await artifact(`${id}/last-message.md`)).trim()).toBe("wrote the notes");
    expect((await stack.runs.get(id))!.record).toMatchObject({ runtime, preflight: { status: "passed" } });
    // What the CLI reported using, as numbers, on the record and on its end event.
    const usage = (await stack.runs.get(id))!.record.usage;
    expect(usage).toEqual([expect.objectContaining({ attempt: 1, inputTokens: expect.any(Number), outputTokens: expect.any(Number) })]);
    expect(usage![0]!.inputTokens + usage![0]!.outputTokens).toBeGreaterThan(0);
    expect(done).toMatchObject({ usage: { outputTokens: usage![0]!.outputTokens } });
    expect(model.requests.some((r) => r.vendor === vendor)).toBe(true);
  });

  it("accepts the model and effort a job names (the CLI refuses an unknown flag)", async () => {
    const id = `e2e-model-${runtime}`;
    const modelName = { codex: "gpt-5-codex", claude: "claude-sonnet-4-5", gemini: "gemini-2.5-pro" }[runtime];
    await stack.js.publish(
      SUBJECTS.submit,
      JSON.stringify({ id, repository: stack.repo, task: { instructions: "say tuned", runtime: { mode: runtime, model: modelName, effort: "high" } } }),
    );
    const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 90_000);
    expect(done).toMatchObject({ type: "succeeded", summary: "tuned" });
    // The model the job named is the one the CLI asked the endpoint for.
    const sent = model.requests.filter((r) => r.vendor === vendor && (r.path.includes(modelName) || JSON.stringify(r.body ?? "").includes(`"model":"${modelName}"`)));
    expect(sent.length).toBeGreaterThan(0);
  });

  it("goes back to the queue on a 401 and pauses the runtime; an operator's re-check resumes it and the job runs", async () => {
    const id = `e2e-401-${runtime}`;
    model.failAuth(vendor, true);
    const paused = waitForWorkerEvent(stack.nc, (e) => e.type === "paused" && e.runtime === runtime, 90_000);
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, runtime, instructions: "write FIX.md: fixed\nsay fixed" }));
    expect(await paused).toMatchObject({ reason: expect.stringMatching(/login expired/) });
    await vi.waitFor(async () => {
      expect((await stack.runs.get(id))!.record).toMatchObject({ state: "queued", attempts: 0, lastError: { code: "AUTH_EXPIRED" } });
    }, 30_000);

    model.failAuth(vendor, false);
    const resumed = waitForWorkerEvent(stack.nc, (e) => e.type === "resumed" && e.runtime === runtime, 60_000);
    const reply = (await stack.nc.request("worker.w-agents.preflight", JSON.stringify({ runtime }), { timeout: 60_000 })).json<PreflightReply>();
    expect(reply.results.every((r) => r.status === "passed")).toBe(true);
    await resumed;
    const done = await events.waitFor((e) => e.jobId === id && e.type === "succeeded", 90_000);
    expect(done).toMatchObject({ attempt: 1, outcome: "CHANGES_READY" });
  });
});

/**
 * The plan's usage limit, answered by the endpoint as the vendor does (claude's API-key login
 * retries its 429 twice first: three answers; gemini gets a daily quota, which it does not retry).
 * The reset times the CLIs print are read by
 * tests/unit/usage-limit.test.ts from their measured output; here no reset is given, so the
 * login waits MOONMIND_USAGE_LIMIT_BACKOFF_MS.
 */
describe.each([
  ["codex", "openai", 1],
  ["claude", "anthropic", 3],
  ["gemini", "gemini", 1],
] as const)("a %s job at the plan's usage limit", (runtime, vendor, answers) => {
  it("goes back without spending an attempt, its login waits out the limit and resumes by itself, and the job succeeds", async () => {
    const id = `e2e-limit-${runtime}`;
    model.usageLimit(vendor, { count: answers });
    const paused = waitForWorkerEvent(stack.nc, (e) => e.type === "paused" && e.runtime === runtime, 90_000);
    const resumed = waitForWorkerEvent(stack.nc, (e) => e.type === "resumed" && e.runtime === runtime, 120_000);
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, runtime, instructions: "write LIMIT.md: after the limit\nsay done" }));
    expect(await paused).toMatchObject({ reason: expect.stringMatching(/^usage limit until .*resumes by itself/) });
    await vi.waitFor(async () => {
      expect((await stack.runs.get(id))!.record).toMatchObject({ state: "queued", attempts: 0, lastError: { code: "USAGE_LIMIT" } });
    }, 30_000);
    await resumed; // nobody asked: the limit ran out
    const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 120_000);
    expect(done).toMatchObject({ type: "succeeded", attempt: 1, outcome: "CHANGES_READY" });
    expect(await artifact(`${id}/changes.patch`)).toContain("+after the limit");
  }, 240_000);
});

/**
 * The same limit with the reset the endpoint names a few seconds ahead: codex prints it at minute
 * precision, and the login pauses until the minute after the one it names (the reset lies within
 * it) — not for the runtime's fallback backoff — and comes back by itself then. claude names one on
 * a subscription login (below); gemini's daily-quota answer prints none even when the API's
 * RetryInfo carries one (measured here: "You have exhausted your daily quota … try again later").
 */
it("a codex job at a usage limit that names its reset pauses its login until then, and succeeds on the same attempt", async () => {
  const id = "e2e-reset-codex";
  const t0 = Date.now();
  model.usageLimit("openai", { count: 1, resetInSeconds: 5 });
  const paused = waitForWorkerEvent(stack.nc, (e) => e.type === "paused" && e.runtime === "codex", 90_000);
  const resumed = waitForWorkerEvent(stack.nc, (e) => e.type === "resumed" && e.runtime === "codex", 180_000);
  await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, runtime: "codex", instructions: "write RESET.md: after the reset\nsay done" }));
  const pause = await paused;
  const t1 = Date.now();
  const reason = pause.type === "paused" ? pause.reason : "";
  expect(reason).not.toMatch(/gave no reset time/);
  const until = Date.parse(/^usage limit until (\S+)/.exec(reason)?.[1] ?? "");
  // The endpoint's reset: 5 s after its answer (whole seconds), which came between t0 and t1.
  const minuteAfter = (ms: number) => (Math.floor(ms / 60_000) + 1) * 60_000;
  expect([minuteAfter(Math.floor(t0 / 1000) * 1000 + 5_000), minuteAfter(t1 + 5_000)]).toContain(until);
  expect(Date.parse((await resumed).at)).toBeGreaterThanOrEqual(until);
  const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 120_000);
  expect(done).toMatchObject({ type: "succeeded", attempt: 1, outcome: "CHANGES_READY" });
}, 300_000);

/**
 * claude names its reset only on a subscription login: the volume gets a long-lived OAuth token
 * (`claude setup-token`'s, which the runtime prefers over the API key) for this one job, and the
 * endpoint answers with the plan's unified-limit headers; claude prints a `rate_limit_event` with
 * `resetsAt`, and the login waits exactly until then.
 */
it("a claude job on a subscription login at its usage limit pauses its login until the reset claude names", async () => {
  const id = "e2e-reset-claude";
  const tokenFile = join(stack.dir, "volumes", "claude", "oauth-token");
  await writeFile(tokenFile, "demo-subscription-oauth-token\n", { mode: 0o600 });
  try {
    const t0 = Date.now();
    model.usageLimit("anthropic", { count: 1, resetInSeconds: 5 });
    const paused = waitForWorkerEvent(stack.nc, (e) => e.type === "paused" && e.runtime === "claude", 90_000);
    const resumed = waitForWorkerEvent(stack.nc, (e) => e.type === "resumed" && e.runtime === "claude", 120_000);
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, runtime: "claude", instructions: "write RESET.md: after the reset\nsay done" }));
    const pause = await paused;
    const t1 = Date.now();
    const reason = pause.type === "paused" ? pause.reason : "";
    expect(reason).toMatch(/claude's usage limit was reached/);
    const until = Date.parse(/^usage limit until (\S+)/.exec(reason)?.[1] ?? "");
    // resetsAt is whole seconds, 5 s after the endpoint's answer (between t0 and t1).
    expect(until).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 + 5_000);
    expect(until).toBeLessThanOrEqual(t1 + 5_000);
    expect(Date.parse((await resumed).at)).toBeGreaterThanOrEqual(until);
    const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 120_000);
    expect(done).toMatchObject({ type: "succeeded", attempt: 1, outcome: "CHANGES_READY" });
    expect(model.requests.some((r) => r.vendor === "anthropic" && r.authorization === "Bearer demo-subscription-oauth-token")).toBe(true);
  } finally {
    await rm(tokenFile, { force: true });
  }
}, 300_000);

/**
 * A follow-up (`task.resume`): the first run's session, kept as its `session.json`, is restored
 * into the follow-up's fresh private home and its CLI continues it (codex `exec resume`, claude
 * `--resume`, gemini `--resume`), from a checkout at another path that starts from the first run's
 * change. The scripted endpoint answers the latest prompt of what it is sent.
 */
describe.each(RUNTIMES)("a %s follow-up", (runtime, vendor) => {
  it("continues the first run's conversation and builds on its change", async () => {
    const first = `e2e-first-${runtime}`;
    const next = `e2e-next-${runtime}`;
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: first, repository: stack.repo, runtime, instructions: `write STORY.md: once upon a time in ${runtime}\nsay the story began` }));
    expect(await events.waitFor((e) => e.jobId === first && (e.type === "succeeded" || e.type === "failed"), 90_000)).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
    expect((await stack.runs.get(first))!.record.artifacts).toContain(`${first}/session.json`);
    // The conversation only: not the login the CLI ran with.
    expect(await artifact(`${first}/session.json`)).not.toContain(DEMO_KEY);

    const from = model.requests.length;
    await stack.js.publish(
      SUBJECTS.submit,
      JSON.stringify({ id: next, repository: stack.repo, runtime, task: { instructions: "run echo and then it went on >> STORY.md\nsay the story went on", resume: { runId: first } } }),
    );
    const done = await events.waitFor((e) => e.jobId === next && (e.type === "succeeded" || e.type === "failed"), 90_000);
    expect(done).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY", summary: "the story went on" });
    expect((await stack.runs.get(next))!.record.resumed).toEqual({ runId: first, from: "patch", session: "continued", sessionId: expect.any(String) });
    // Its first model request carries the first run's conversation: its prompt and its answer.
    const opening = model.requests.slice(from).find((r) => r.vendor === vendor && JSON.stringify(r.body ?? "").includes("and then it went on"));
    expect(JSON.stringify(opening?.body)).toContain(`once upon a time in ${runtime}`);
    expect(JSON.stringify(opening?.body)).toContain("the story began");
    // Its patch changes the file the first run made, on top of what that run wrote.
    const patch = await artifact(`${next}/changes.patch`);
    expect(patch).toContain("--- a/STORY.md");
    expect(patch).toContain(` once upon a time in ${runtime}\n+and then it went on`);
  }, 200_000);
});

it("a follow-up on another runtime starts from the earlier change, without its session", async () => {
  const next = "e2e-next-across";
  await stack.js.publish(
    SUBJECTS.submit,
    JSON.stringify({ id: next, repository: stack.repo, runtime: "gemini", task: { instructions: "run echo told again >> STORY.md\nsay retold", resume: { runId: "e2e-first-codex" } } }),
  );
  expect(await events.waitFor((e) => e.jobId === next && (e.type === "succeeded" || e.type === "failed"), 90_000)).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
  expect((await stack.runs.get(next))!.record.resumed).toEqual({ runId: "e2e-first-codex", from: "patch", session: "other-runtime" });
  expect(await artifact(`${next}/changes.patch`)).toContain(" once upon a time in codex\n+told again");
}, 120_000);

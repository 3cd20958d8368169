/**
 * Why a job waits, visible at once: a shard no worker serves, or one whose only worker's login is
 * not ready, gives the job a `waiting` event and record field with the remedy; when a ready worker
 * comes, the job goes on by itself. A second submission under an existing id is reported too.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { SubmissionEventSchema, type SubmissionEvent } from "../../src/schemas/events.js";
import { SUBJECTS, submissionEventFilter } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;
const submissions: SubmissionEvent[] = [];

beforeAll(async () => {
  stack = await startStack({ MOONMIND_CODEX_SHARDS: "1" });
  events = recordJobEvents(stack.nc);
  stack.nc.subscribe(submissionEventFilter(), { callback: (_e, m) => void submissions.push(SubmissionEventSchema.parse(m.json())) });
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const submit = (body: object) => stack.js.publish(SUBJECTS.submit, JSON.stringify(body));

describe("a job no ready worker can take", () => {
  it("says at once that no worker serves its shard, and runs once one does", async () => {
    await submit({ id: "unbound-1", repository: stack.repo, instructions: "say hi" });
    await events.waitFor((e) => e.jobId === "unbound-1" && e.type === "routed");
    const waiting = await events.waitFor((e) => e.jobId === "unbound-1" && e.type === "waiting", 2_000);
    expect(waiting).toMatchObject({ subject: "jobs.codex.shard.0", reason: expect.stringContaining("no worker serves jobs.codex.shard.0") });
    expect((await stack.runs.get("unbound-1"))!.record.waiting?.reason).toContain("MOONMIND_WORKER_RUNTIMES=codex");

    const worker = await startWorker(stack, "w-arrives");
    try {
      expect(await events.waitFor((e) => e.jobId === "unbound-1" && e.type === "succeeded", 15_000)).toBeDefined();
      expect((await stack.runs.get("unbound-1"))!.record.waiting).toBeUndefined();
    } finally {
      await worker.stop();
    }
  });

  it("names the login and its remedy when the only worker serving it is paused, and runs once it is logged in", async () => {
    const volume = join(stack.dir, "not-yet-logged-in");
    await mkdir(volume);
    const worker = await startWorker(stack, "w-paused", { CODEX_VOLUME_PATH: volume, MOONMIND_STARTUP_STRICT: "false" });
    try {
      await submit({ id: "paused-1", repository: stack.repo, instructions: "say hi" });
      const waiting = await events.waitFor((e) => e.jobId === "paused-1" && e.type === "waiting", 2_000);
      expect((waiting as { reason: string }).reason).toMatch(/^no worker serving jobs\.codex\.shard\.0 is ready — .*codex_auth_volume.*tools\/auth-codex-volume\.sh/);
      await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }));
      await stack.nc.request("worker.w-paused.preflight", "", { timeout: 15_000 });
      expect(await events.waitFor((e) => e.jobId === "paused-1" && e.type === "succeeded", 15_000)).toBeDefined();
    } finally {
      await worker.stop();
    }
  });
});

describe("the same id again", () => {
  it("is reported as a duplicate with the existing state, and whether its body is the stored one", async () => {
    const worker = await startWorker(stack, "w-dup");
    try {
      const body = { id: "dup-1", repository: stack.repo, instructions: "say once" };
      await submit(body);
      await events.waitFor((e) => e.jobId === "dup-1" && e.type === "succeeded", 15_000);
      await submit(body);
      await submit({ ...body, instructions: "say something else" });
      const seen = () => submissions.filter((s) => s.jobId === "dup-1");
      await vi.waitFor(() => expect(seen()).toHaveLength(2), { timeout: 10_000, interval: 50 });
      expect(seen()).toEqual([
        expect.objectContaining({ type: "duplicate", state: "succeeded", sameRequest: true }),
        expect.objectContaining({ type: "duplicate", state: "succeeded", sameRequest: false }),
      ]);
      expect(events.events.filter((e) => e.jobId === "dup-1" && e.type === "succeeded")).toHaveLength(1);
    } finally {
      await worker.stop();
    }
  });
});

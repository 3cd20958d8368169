/**
 * Every class of bad input gets `rejected` with a readable reason, a redacted copy on DEAD and a
 * terminated message (never redelivered), and intake keeps serving after each one.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { DeadLetterSchema } from "../../src/schemas/events.js";
import { INTAKE_CONSUMER, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack({ MOONMIND_MAX_PAYLOAD_BYTES: "2048" });
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

const secretValue = "sk-live-0123456789abcdefghijklmnop";
const cases: Array<[string, string | object, RegExp, string?]> = [
  ["invalid JSON", '{"id":"bad-json","repository":', /not valid JSON/],
  ["a JSON array", '[{"id":"bad-array"}]', /must be a JSON object/],
  ["a missing repository", { id: "bad-norepo", instructions: "x" }, /repository is required/],
  ["a wrong type", { id: "bad-type", repository: "org/repo", instructions: ["x"] }, /instructions/],
  ["an unknown runtime", { id: "bad-runtime", repository: "org/repo", instructions: "x", runtime: "cobol" }, /unknown runtime 'cobol'/],
  ["credentials in the repository URL", { id: "bad-creds", repository: "https://bob:hunter2@github.com/org/repo", instructions: "x" }, /credentials|secret/],
  ["an option-like repository", { id: "bad-option", repository: "--upload-pack=touch /tmp/pwned", instructions: "x" }, /must not start with '-'/],
  ["a secret-looking field", { id: "bad-secret", repository: "org/repo", instructions: "x", metadata: { api_key: secretValue } }, /'metadata.api_key' looks like a secret/, "metadata.api_key"],
  ["a secret-looking value", { id: "bad-value", repository: "org/repo", instructions: `use ${secretValue}` }, /'instructions' looks like a secret/, "instructions"],
  ["an oversized payload", { id: "bad-size", repository: "org/repo", instructions: "x".repeat(5_000) }, /limit is 2048/],
  ["deeply nested arrays", `{"id":"bad-deep","repository":"org/repo","instructions":"x","metadata":{"a":${"[".repeat(600)}`, /more than 32 levels deep/, "metadata.a" + "[0]".repeat(30)],
  ["a duplicate key", '{"id":"bad-dup","repository":"org/repo","task":{"instructions":"a","instructions":"b"}}', /'task.instructions' is given more than once/, "task.instructions"],
  ["a NUL in the instructions", '{"id":"bad-nul","repository":"org/repo","instructions":"a\\u0000b"}', /task.instructions: contains the control character U\+0000/, "task.instructions"],
  ["newBranch HEAD", { id: "bad-head", repository: "org/repo", instructions: "x", task: { git: { newBranch: "HEAD" } } }, /git ref/, "task.git.newBranch"],
  ["an option-like model", { id: "bad-model", repository: "org/repo", instructions: "x", model: "--yolo" }, /must not start with '-'/, "task.runtime.model"],
  ["an unknown key in task", { id: "bad-task-key", repository: "org/repo", task: { instructions: "x", sandbox: "off" } }, /task: unknown field 'sandbox'/, "task.sandbox"],
  ["a secret-shaped unknown key", { id: "bad-key", repository: "org/repo", instructions: "x", [secretValue]: 1 }, /looks like a secret/],
  ["a secret-shaped metadata key", { id: "bad-meta-key", repository: "org/repo", instructions: "x", metadata: { [secretValue]: "x" } }, /looks like a secret/],
];

describe("intake rejects bad input", () => {
  it.each(cases)("%s", async (_name, payload, reason, field) => {
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    await stack.js.publish(SUBJECTS.submit, body);
    // Only a top-level id names the job; one nested deeper (the array case) is not borrowed.
    const id = /^\{"id":"([^"]+)"/.exec(body)?.[1];
    const rejected = await events.waitFor((e) =>
      e.type === "rejected" && (id === undefined ? reason.test(e.reason) && !e.jobId.startsWith("bad-") : e.jobId === id),
    );
    expect(rejected.type).toBe("rejected");
    if (rejected.type !== "rejected") return;
    expect(rejected.reason).toMatch(reason);
    if (field) expect(rejected.field).toBe(field);
    expect(rejected.reason).not.toContain(secretValue);
    expect(rejected.reason).not.toContain("hunter2");

    const dead = await stack.jsm.streams.getMessage(STREAMS.dead, { last_by_subj: `dead.jobs.${rejected.jobId}` });
    const letter = DeadLetterSchema.parse(dead!.json());
    expect(letter).toMatchObject({ jobId: rejected.jobId, stage: "intake", subject: SUBJECTS.submit });
    expect(JSON.stringify(letter)).not.toContain(secretValue);
    expect(JSON.stringify(letter)).not.toContain("hunter2");
  });

  it("reports a rejection under an existing job's id on a subject of its own, leaving that job's history alone", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "taken-1", repository: "org/repo", instructions: "x" }));
    // No worker serves its shard here, so its history ends with why it waits.
    await events.waitFor((e) => e.jobId === "taken-1" && e.type === "waiting");
    const seen: unknown[] = [];
    const sub = stack.nc.subscribe("status.submissions.taken-1.>", { callback: (_err, m) => void seen.push({ subject: m.subject, body: m.json() }) });
    try {
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "taken-1", repository: 5, instructions: "forged" }));
      await vi.waitFor(() => expect(seen).toHaveLength(1), { timeout: 10_000 });
    } finally {
      sub.unsubscribe();
    }
    expect(seen[0]).toMatchObject({
      subject: "status.submissions.taken-1.rejected",
      body: { type: "rejected", jobId: "taken-1", field: "repository", reason: expect.stringMatching(/repository/) },
    });
    // The job's own history has no rejection, neither live nor in STATUS, and its record is untouched.
    expect(events.events.filter((e) => e.jobId === "taken-1").map((e) => e.type)).toEqual(["accepted", "routed", "waiting"]);
    expect(await stack.jsm.streams.getMessage(STREAMS.status, { last_by_subj: "status.jobs.taken-1.rejected" }).catch(() => null)).toBeNull();
    expect((await stack.runs.get("taken-1"))!.record.state).toBe("queued");
    // The DEAD copy still goes where operators look for it.
    const dead = await stack.jsm.streams.getMessage(STREAMS.dead, { last_by_subj: "dead.jobs.taken-1" });
    expect(DeadLetterSchema.parse(dead!.json())).toMatchObject({ jobId: "taken-1", stage: "intake", field: "repository" });
  });

  it("gives jobs without an id ids of their own, never a nested one", async () => {
    for (const repository of ["org/one", "org/two"]) {
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ repository, task: { skill: { id: "lint", args: { id: "x" } } }, metadata: { id: "m" } }));
    }
    await vi.waitFor(() => expect(events.events.filter((e) => e.type === "routed" && e.meta?.skill === "lint")).toHaveLength(2), { timeout: 10_000 });
    const ids = events.events.filter((e) => e.type === "routed" && e.meta?.skill === "lint").map((e) => e.jobId);
    expect(new Set(ids).size).toBe(2);
    expect(ids).not.toContain("lint");
  });

  it("terminates what it rejects: nothing is pending or redelivered, and intake still serves", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "after-all", repository: "org/repo", instructions: "x" }));
    await events.waitFor((e) => e.jobId === "after-all" && e.type === "routed");
    // The routed event goes out just before intake acks the message.
    const info = await vi.waitFor(async () => {
      const i = await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER);
      expect(i.num_ack_pending).toBe(0);
      return i;
    });
    expect(info.num_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    // Each rejected message was delivered exactly once and is gone from the work queue.
    const rejections = events.events.filter((e) => e.type === "rejected");
    expect(rejections).toHaveLength(cases.length);
    expect(new Set(rejections.map((e) => e.jobId)).size).toBe(cases.length);
    const jobs = await stack.jsm.streams.info(STREAMS.jobs);
    const submitLeft = (await stack.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.submit })).state.subjects;
    expect(submitLeft?.[SUBJECTS.submit] ?? 0).toBe(0);
    // Only the routed jobs (taken-1, the two lint jobs, after-all), waiting on their shards.
    expect(jobs.state.messages).toBe(events.events.filter((e) => e.type === "routed").length);
    expect(jobs.state.messages).toBe(4);
  });
});

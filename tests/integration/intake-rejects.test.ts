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
];

describe("intake rejects bad input", () => {
  it.each(cases)("%s", async (_name, payload, reason, field) => {
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    await stack.js.publish(SUBJECTS.submit, body);
    const id = /"id":"([^"]+)"/.exec(body)![1];
    const rejected = await events.waitFor((e) => e.jobId === id && e.type === "rejected");
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
    expect(jobs.state.messages).toBe(1); // only the routed "after-all" job, waiting on its shard
  });
});

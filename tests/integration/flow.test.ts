/**
 * The spine, end to end on a real nats-server: jobs.submit → intake → hashed shard subject →
 * worker → stand-in codex in a real git workspace → events, run record and artifacts.
 */
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Worker } from "../../actors/worker/worker.js";
import { route } from "../../src/routing.js";
import { OBJECT_STORES, SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;

beforeAll(async () => {
  stack = await startStack();
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-flow");
});

afterAll(() => stopAll(events, worker, intake, stack));

const submit = (payload: unknown) => stack.js.publish(SUBJECTS.submit, JSON.stringify(payload));

describe("a job's flow", () => {
  it("is routed to its hashed shard, run, and ends succeeded with a run record and artifacts", async () => {
    await submit({ id: "flow-1", repository: stack.repo, instructions: "write NOTES.md: hello\nsay added notes" });
    const done = await events.waitFor((e) => e.jobId === "flow-1" && (e.type === "succeeded" || e.type === "failed"));
    expect(done.type).toBe("succeeded");

    const expected = route("codex", stack.repo, 3);
    const routed = events.events.find((e) => e.jobId === "flow-1" && e.type === "routed");
    expect(routed).toMatchObject({ subject: expected.subject, consumer: expected.consumer, shard: expected.shard });
    expect(events.events.filter((e) => e.jobId === "flow-1").map((e) => e.type)).toEqual([
      "accepted",
      "routed",
      "claimed",
      "preflight",
      "started",
      "progress",
      "succeeded",
    ]);

    const run = (await stack.runs.get("flow-1"))!.record;
    expect(run).toMatchObject({
      state: "succeeded",
      runtime: "codex",
      shard: expected.shard,
      subject: expected.subject,
      consumer: expected.consumer,
      workerId: "w-flow",
      attempts: 1,
      preflight: { status: "passed", volume: "codex_auth_volume" },
      diagnostics: { queue: expected.subject, consumer: expected.consumer, volumeName: "codex_auth_volume", pending: 0 },
      result: { outcome: "CHANGES_READY", summary: "added notes" },
    });
    expect(run.artifacts.sort()).toEqual(["flow-1/changes.patch", "flow-1/last-message.md", "flow-1/output.log"]);

    const store = await new Objm(stack.nc).open(OBJECT_STORES.artifacts);
    const patch = new TextDecoder().decode((await store.getBlob("flow-1/changes.patch"))!);
    expect(patch).toContain("+++ b/NOTES.md");
    expect(patch).toContain("+hello");
    expect(new TextDecoder().decode((await store.getBlob("flow-1/last-message.md"))!)).toBe("added notes\n");
    expect(new TextDecoder().decode((await store.getBlob("flow-1/output.log"))!)).toContain('"type":"turn.completed"');

    // The same output went out live, in batches, on logs.jobs.flow-1.
    const batch = await stack.jsm.streams.getMessage("LOGS", { last_by_subj: "logs.jobs.flow-1" });
    const lines = (batch!.json() as { lines: string[] }).lines;
    expect(lines.some((l) => l.includes('"type":"turn.completed"'))).toBe(true);
  });

  it("carries the job's skill and stage on every event and on the run record", async () => {
    await submit({
      id: "meta-1",
      repository: stack.repo,
      task: { instructions: "say staged", skill: { id: "triage" } },
      metadata: { stage: "discover", team: "a" },
    });
    await events.waitFor((e) => e.jobId === "meta-1" && e.type === "succeeded");
    const mine = events.events.filter((e) => e.jobId === "meta-1");
    expect(mine.length).toBeGreaterThanOrEqual(6);
    for (const e of mine) expect(e.meta).toEqual({ skill: "triage", stage: "discover" });
    expect((await stack.runs.get("meta-1"))!.record.meta).toEqual({ skill: "triage", stage: "discover" });
  });

  it("never lets a secret the agent prints reach an event, the log stream or an artifact", async () => {
    await submit({ id: "leak-1", repository: stack.repo, instructions: "leak" });
    await events.waitFor((e) => e.jobId === "leak-1" && e.type === "succeeded");
    const secret = /sk-live-0123456789abcdefghijklmnop/;
    expect(JSON.stringify(events.events.filter((e) => e.jobId === "leak-1"))).not.toMatch(secret);
    expect(JSON.stringify(events.events.find((e) => e.jobId === "leak-1" && e.type === "succeeded"))).toMatch(/\[REDACTED\]/);
    const batch = await stack.jsm.streams.getMessage("LOGS", { last_by_subj: "logs.jobs.leak-1" });
    expect(new TextDecoder().decode(batch!.data)).not.toMatch(secret);
    const store = await new Objm(stack.nc).open(OBJECT_STORES.artifacts);
    for (const name of ["output.log", "last-message.md"]) {
      expect(new TextDecoder().decode((await store.getBlob(`leak-1/${name}`))!)).not.toMatch(secret);
    }
    expect(JSON.stringify((await stack.runs.get("leak-1"))!.record)).not.toMatch(secret);
  });

  it("keeps a job that runs past the ack wait alive: one delivery, one claim", async () => {
    await submit({ id: "slow-1", repository: stack.repo, instructions: "sleep 5000\nsay slow" });
    await events.waitFor((e) => e.jobId === "slow-1" && e.type === "succeeded", 20_000);
    expect(events.events.filter((e) => e.jobId === "slow-1" && e.type === "claimed")).toHaveLength(1);
    const shard = (await stack.runs.get("slow-1"))!.record.consumer;
    expect((await stack.jsm.consumers.info("JOBS", shard)).num_redelivered).toBe(0);
  });

  it("fails a job that can never work at once, without retrying it", async () => {
    await submit({ id: "perm-1", repository: stack.repo, ref: "no-such-branch", instructions: "say x" });
    const failed = await events.waitFor((e) => e.jobId === "perm-1" && e.type === "failed");
    expect(failed).toMatchObject({ state: "failed", attempt: 1, error: { code: "REF_NOT_FOUND" } });
    expect(events.events.filter((e) => e.jobId === "perm-1" && e.type === "retrying")).toHaveLength(0);
    expect((await stack.runs.get("perm-1"))!.record).toMatchObject({ state: "failed", result: { outcome: "FAILED" } });
  });

  it("finishes NO_CHANGES without a patch when the agent changes nothing", async () => {
    await submit({ id: "flow-2", repository: stack.repo, instructions: "say nothing to do" });
    const done = await events.waitFor((e) => e.jobId === "flow-2" && e.type === "succeeded");
    expect(done).toMatchObject({ outcome: "NO_CHANGES" });
    expect((await stack.runs.get("flow-2"))!.record.artifacts).not.toContain("flow-2/changes.patch");
  });

  it("runs a job submitted twice with the same id once", async () => {
    await submit({ id: "dup-1", repository: stack.repo, instructions: "write A.md: a" });
    await submit({ id: "dup-1", repository: stack.repo, instructions: "write B.md: b" });
    await events.waitFor((e) => e.jobId === "dup-1" && e.type === "succeeded");
    // A third submission after the first finished is also a no-op: the marker event below proves
    // intake and the worker have both moved past it.
    await submit({ id: "dup-1", repository: stack.repo, instructions: "write C.md: c" });
    await submit({ id: "dup-marker", repository: stack.repo, instructions: "say marker" });
    await events.waitFor((e) => e.jobId === "dup-marker" && e.type === "succeeded");
    const types = events.events.filter((e) => e.jobId === "dup-1").map((e) => e.type);
    expect(types.filter((t) => t === "claimed")).toHaveLength(1);
    expect(types.filter((t) => t === "succeeded")).toHaveLength(1);
    expect((await stack.runs.get("dup-1"))!.record.request.task.instructions).toBe("write A.md: a");
  });

  it("accepts plain JSON bytes published with core NATS, no client of ours involved", async () => {
    stack.nc.publish(SUBJECTS.submit, new TextEncoder().encode(`{"id":"raw-1","repository":"${stack.repo}","instructions":"say raw"}`));
    const done = await events.waitFor((e) => e.jobId === "raw-1" && (e.type === "succeeded" || e.type === "rejected"));
    expect(done.type).toBe("succeeded");
  });

  it("retries a failing agent with backoff, then dead-letters it when attempts run out", async () => {
    await submit({ id: "fail-1", repository: stack.repo, instructions: "fail", maxAttempts: 2 });
    const failed = await events.waitFor((e) => e.jobId === "fail-1" && e.type === "failed");
    expect(failed).toMatchObject({ state: "dead_letter", attempt: 2, error: { code: "AGENT_FAILED" } });
    const types = events.events.filter((e) => e.jobId === "fail-1").map((e) => e.type);
    expect(types.filter((t) => t === "retrying")).toHaveLength(1);
    expect(types.filter((t) => t === "claimed")).toHaveLength(2);
    const run = (await stack.runs.get("fail-1"))!.record;
    expect(run).toMatchObject({ state: "dead_letter", attempts: 2, result: { outcome: "FAILED" } });
    const dead = await stack.jsm.streams.getMessage("DEAD", { last_by_subj: "dead.jobs.fail-1" });
    expect(dead?.json()).toMatchObject({ jobId: "fail-1", stage: "worker" });
  });
});

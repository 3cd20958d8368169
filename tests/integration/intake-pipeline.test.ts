/**
 * Intake handles many submissions at once (MOONMIND_INTAKE_INFLIGHT) without giving up what it
 * promised one at a time: every job routed once, a job's events in order on STATUS, a duplicate
 * id (even one arriving right behind its first copy) never run twice, a forged copy under a
 * job's id never written into that job's history, and a stop in the middle losing nothing.
 */
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { provision } from "../../src/nats/provision.js";
import { BUCKETS, INTAKE_CONSUMER, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;

beforeAll(async () => {
  // No worker: every job takes the `waiting` path too (accepted < routed < waiting). A long ack
  // wait, so a slow machine cannot turn a message still in the pipeline into a redelivery.
  stack = await startStack({ MOONMIND_ACK_WAIT_MS: "60000" });
});

afterAll(() => stopAll(stack));

/** Every message of a stream matching `filter`, in stream order (an ordered consumer from the start). */
async function readAll(stream: string, filter: string[]): Promise<JsMsg[]> {
  const info = await stack.jsm.streams.info(stream, { subjects_filter: filter.length === 1 ? filter[0]! : ">" });
  if (info.state.messages === 0) return [];
  const consumer = await jetstream(stack.nc).consumers.get(stream, { filter_subjects: filter });
  const out: JsMsg[] = [];
  const messages = await consumer.consume();
  for await (const m of messages as AsyncIterable<JsMsg>) {
    out.push(m);
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
}

interface StatusEntry {
  seq: number;
  /** When the server stored it (ns since the epoch). */
  at: number;
  family: "jobs" | "submissions";
  jobId: string;
  type: string;
}

/** Everything on STATUS with `prefix` in the job id, in stream order. */
async function statusHistory(prefix: string): Promise<StatusEntry[]> {
  const out: StatusEntry[] = [];
  for (const m of await readAll(STREAMS.status, ["status.jobs.>", "status.submissions.>"])) {
    const [, family, jobId, type] = m.subject.split(".") as [string, "jobs" | "submissions", string, string];
    if (jobId.startsWith(prefix)) out.push({ seq: m.seq, at: m.info.timestampNanos, family, jobId, type });
  }
  return out;
}

/** When each run record with `prefix` was first written (ns since the epoch). */
async function createdAt(prefix: string): Promise<Map<string, number>> {
  const kv = await new Kvm(stack.nc).open(BUCKETS.runs);
  const stream = (await kv.status()).streamInfo.config.name;
  const out = new Map<string, number>();
  for (const m of await readAll(stream, [">"])) {
    const key = m.subject.split(".").slice(2).join(".");
    if (key.startsWith(prefix) && !out.has(key)) out.set(key, m.info.timestampNanos);
  }
  return out;
}

/** Shard messages per job id on JOBS, read one by one (a work queue allows no second consumer of them). */
async function shardMessages(prefix: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const { first_seq, last_seq } = (await stack.jsm.streams.info(STREAMS.jobs)).state;
  const seqs = Array.from({ length: last_seq - first_seq + 1 }, (_, k) => first_seq + k);
  for (let k = 0; k < seqs.length; k += 200) {
    const got = await Promise.all(seqs.slice(k, k + 200).map((seq) => stack.jsm.streams.getMessage(STREAMS.jobs, { seq }).catch(() => null)));
    for (const m of got) {
      if (!m || !/^jobs\.[^.]+\.shard\.\d+$/.test(m.subject)) continue;
      const id = (m.json() as { id: string }).id;
      if (id.startsWith(prefix)) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}

async function intakeSettled(): Promise<void> {
  await vi.waitFor(
    async () => {
      const i = await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER);
      expect(i.num_pending + i.num_ack_pending).toBe(0);
    },
    { timeout: 30_000, interval: 100 },
  );
}

/** Per job, its STATUS entries' types in stream order. */
function byJob(history: StatusEntry[], family: "jobs" | "submissions"): Map<string, StatusEntry[]> {
  const out = new Map<string, StatusEntry[]>();
  for (const e of history.filter((h) => h.family === family)) out.set(e.jobId, [...(out.get(e.jobId) ?? []), e]);
  return out;
}

describe("intake with many submissions at once", () => {
  it("routes each job once, keeps each job's events in order, and runs a duplicate id once", async () => {
    const intake = await startIntake(stack, { MOONMIND_INTAKE_INFLIGHT: "16" });
    try {
      const n = 240;
      const body = (i: number, extra = "") => ({ id: `pl-${i}`, repository: `org/repo-${i % 7}`, instructions: `job ${i}${extra}` });
      const payloads: string[] = [];
      let sameDuplicates = 0;
      let otherDuplicates = 0;
      const forged: string[] = [];
      for (let i = 0; i < n; i++) {
        payloads.push(JSON.stringify(body(i)));
        // Right behind its first copy: would be in the pipeline at the same time if not keyed.
        if (i % 6 === 0) (payloads.push(JSON.stringify(body(i))), sameDuplicates++);
        if (i % 10 === 0) (payloads.push(JSON.stringify(body(i, " (changed)"))), otherDuplicates++);
        // A malformed copy under the id of a job just submitted: reported apart, never in its history.
        if (i % 15 === 1) (payloads.push(JSON.stringify({ id: `pl-${i}`, repository: 5, instructions: "forged" })), forged.push(`pl-${i}`));
        // Later duplicates, far from the first copy.
        if (i >= 100 && i % 20 === 0) (payloads.push(JSON.stringify(body(i - 100))), sameDuplicates++);
      }
      // All at once: the publishes are written in this order and not awaited one by one.
      await Promise.all(payloads.map((p) => stack.js.publish(SUBJECTS.submit, p)));
      await intakeSettled();

      const history = await statusHistory("pl-");
      const jobs = byJob(history, "jobs");
      expect(jobs.size).toBe(n);
      for (const [id, entries] of jobs) {
        // Exactly these events, once each, in this order by STATUS sequence.
        expect(entries.map((e) => e.type), id).toEqual(["accepted", "routed", "waiting"]);
      }
      // Pipelined indeed: some job's run record was created before the job ahead of it had said
      // all it says (one at a time, each record would come after the previous job's last event).
      const created = [...(await createdAt("pl-")).entries()].sort((a, b) => a[1] - b[1]);
      expect(created).toHaveLength(n);
      const overlapped = created.filter(([, at], k) => k > 0 && at < jobs.get(created[k - 1]![0])!.at(-1)!.at).length;
      expect(overlapped).toBeGreaterThan(0);

      // Duplicates and forged copies come after the job they name was fully handled (one id at a time).
      const submissions = byJob(history, "submissions");
      const lastOf = (id: string) => jobs.get(id)!.at(-1)!.seq;
      const dupCount = [...submissions.values()].flat().filter((e) => e.type === "duplicate").length;
      expect(dupCount).toBe(sameDuplicates + otherDuplicates);
      for (const [id, entries] of submissions) for (const e of entries) expect(e.seq, `${id}.${e.type}`).toBeGreaterThan(lastOf(id));
      expect([...submissions.values()].flat().filter((e) => e.type === "rejected").map((e) => e.jobId).sort()).toEqual([...forged].sort());

      // One run record and one shard message per job.
      const shard = await shardMessages("pl-");
      expect(shard.size).toBe(n);
      expect([...shard.values()].every((c) => c === 1)).toBe(true);
      for (const i of [0, 1, 60, 120, n - 1]) {
        const stored = await stack.runs.get(`pl-${i}`);
        expect(stored!.record).toMatchObject({ state: "queued", request: { task: { instructions: `job ${i}` } }, waiting: { reason: expect.stringContaining("no worker serves") } });
      }
    } finally {
      await intake.stop();
    }
  });

  it("stopped in the middle of a burst, loses nothing and leaves nothing half done", async () => {
    const n = 400;
    // What a stop leaves unacked (pulled, or on its way when the pull was cancelled) comes back
    // after the ack wait: a short one here, so the test need not wait for it.
    await provision(stack.nc, stack.config({ MOONMIND_ACK_WAIT_MS: "2000" }));
    const first = await startIntake(stack, { MOONMIND_INTAKE_INFLIGHT: "32" });
    let second: Intake | undefined;
    try {
      await Promise.all(
        Array.from({ length: n }, (_, i) => stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: `st-${i}`, repository: "org/stop", instructions: `job ${i}` }))),
      );
      // Stop once some, not all, have been taken in.
      await vi.waitFor(async () => expect((await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER)).delivered.stream_seq).toBeGreaterThan(0), {
        timeout: 10_000,
        interval: 5,
      });
      await first.stop();
      second = await startIntake(stack, { MOONMIND_INTAKE_INFLIGHT: "32" });
      await intakeSettled();
      const jobs = byJob(await statusHistory("st-"), "jobs");
      expect(jobs.size).toBe(n);
      for (const [id, entries] of jobs) expect(entries.map((e) => e.type), id).toEqual(["accepted", "routed", "waiting"]);
      const shard = await shardMessages("st-");
      expect(shard.size).toBe(n);
      expect([...shard.values()].every((c) => c === 1)).toBe(true);
    } finally {
      await stopAll(first, second);
    }
  });
});

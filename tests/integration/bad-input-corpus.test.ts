/**
 * The bad-input corpus: the fixed cases in tests/fixtures/bad-inputs/ plus at least 1,000 cases
 * fast-check generates (driven by the fields of the zod schemas), each published raw to
 * `jobs.submit` with intake running against a real nats-server. Every one gets its verdict
 * (rejected, or accepted and routed) on its first delivery, intake stays up, DEAD holds a copy per
 * rejection, and none of the secrets planted in them appears in STATUS, DEAD, the `runs` bucket
 * or intake's log.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { connectNats } from "../../src/nats/connect.js";
import { JobSubmissionSchema, TaskSchema } from "../../src/schemas/job.js";
import { parseSubmission, type SubmissionOptions } from "../../src/submission.js";
import { BUCKETS, INTAKE_CONSUMER, STREAMS, SUBJECTS } from "../../src/subjects.js";
import { startStack, stopAll, type TestStack } from "../helpers/stack.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/bad-inputs");
/** Fixed, so a failing case can be replayed: set FC_SEED to try others. */
const SEED = Number(process.env.FC_SEED ?? 20_240_601);
const GENERATED = 1_200;

// Secrets made up for this run: their exact text must never come back out.
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const made = (n: number) => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join("");
const SK = `sk-${made(24)}`;
const GHP = `ghp_${made(36)}`;
const AIZA = `AIza${made(35)}`;
const PW = `pw${made(20)}`;
const PLANTED = [SK, GHP, AIZA, PW];
/** What the scan looks for: each secret whole, and every 10 characters of it (a quoted prefix is a leak too). */
const FRAGMENTS = PLANTED.flatMap((p) => [p, ...Array.from({ length: Math.floor((p.length - 10) / 5) + 1 }, (_, i) => p.slice(i * 5, i * 5 + 10))]);
const SHAPED = [SK, GHP, AIZA];

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));

async function fixedCases(): Promise<Array<{ name: string; bytes: Uint8Array }>> {
  const names = (await readdir(FIXTURES)).filter((n) => n.endsWith(".json") || n.endsWith(".bin")).sort();
  const cases = await Promise.all(
    names.map(async (name) => {
      const text = (await readFile(join(FIXTURES, name))).toString("latin1");
      const filled = text
        .replaceAll("{{SK_TAIL}}", SK.slice(3))
        .replaceAll("{{SK}}", SK)
        .replaceAll("{{GHP}}", GHP)
        .replaceAll("{{AIZA}}", AIZA)
        .replaceAll("{{PW}}", PW);
      return { name, bytes: new Uint8Array(Buffer.from(filled, "latin1")) };
    }),
  );
  // Too big to keep as files, built the same way every run.
  const base = { repository: "org/repo", instructions: "x" };
  const deep = (open: string, close: string, n: number) => enc.encode(`{"id":"fx-deep-${n}","repository":"org/repo","instructions":"x","metadata":{"a":${open.repeat(n)}1${close.repeat(n)}}}`);
  cases.push(
    { name: "5,000-level objects", bytes: deep('{"a":', "}", 5_000) },
    { name: "20,000-level arrays", bytes: deep("[", "]", 20_000) },
    { name: "truncated 60,000-level arrays", bytes: enc.encode("[".repeat(60_000)) },
    { name: "a 65,000-character affinityKey", bytes: json({ id: "fx-affinity-65k", ...base, affinityKey: "a".repeat(65_000) }) },
    { name: "150 kB of hex instructions (oversized)", bytes: json({ id: "fx-hex", ...base, instructions: made(150_000).replace(/[^0-9a-f]/gi, "a") }) },
    { name: "a secret at the start of an oversized payload", bytes: json({ id: "fx-big-secret", ...base, instructions: `${SK} ${"x".repeat(80_000)}` }) },
    { name: "a secret straddling the kept 4 KiB", bytes: enc.encode(`{"id":"fx-straddle","instructions":"${"y".repeat(4_070)} ${GHP} ${"z".repeat(70_000)}"}`) },
    { name: "150 steps", bytes: json({ id: "fx-steps", ...base, task: { steps: Array.from({ length: 150 }, (_, i) => ({ title: `s${i}` })) } }) },
    { name: "an array of 20,000 numbers", bytes: json({ id: "fx-array-20k", ...base, metadata: { list: Array.from({ length: 20_000 }, () => 0) } }) },
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Generated cases, from the fields the schemas name

const SUBMISSION_KEYS = Object.keys(JobSubmissionSchema.shape);
const TASK_KEYS = Object.keys(TaskSchema.shape);

const secret = fc.constantFrom(...SHAPED);
const id = fc.oneof(
  fc.constantFrom("", "a.b", "*", ">", "x".repeat(129), "has space", "ünï", "../etc", "-", "_", "dup-1", "dup-2", "dup-3"),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/),
  secret,
  fc.jsonValue({ maxDepth: 2 }),
);
const repository = fc.constantFrom(
  "org/repo", "https://github.com/org/repo.git", "git@github.com:org/repo", "org/other",
  `https://bob:${PW}@github.com/org/repo`, `https://${GHP}@github.com/org/repo`, `https://x-access-token:${PW}@github.com/o/r`,
  "file:///etc/passwd", "/etc", "./repo", "--upload-pack=touch /tmp/pwned", "-oProxyCommand=touch /tmp/x",
  "ext::sh -c touch% /tmp/x", "org/../../etc", "../../../etc/passwd", "org/repo\u0000", "fd::1", "", " org/repo",
);
const runtime = fc.constantFrom("codex", "claude", "gemini", "cobol", "", "CODEX", "--help", "codex\u0000");
const branch = fc.constantFrom("main", "feature/x", "HEAD", "x.lock", "x/", "x.", "a//b", "-f", "a\u0000b", "@", "FETCH_HEAD", "a..b", "a b", "ünï", "--upload-pack=x");
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("a\u0000b", "x\u001b[2J", "fix it", "   "),
  secret.map((s) => `please use ${s} now`),
);
const key = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...SUBMISSION_KEYS, ...TASK_KEYS, "__proto__", "constructor", "password", "api_key", "token"), secret);
const value = fc.oneof(fc.jsonValue({ maxDepth: 3 }), secret, text);

const task = fc.record(
  {
    instructions: text,
    runtime: fc.record({ mode: runtime, model: fc.oneof(text, secret, fc.constantFrom("gpt-5", "--yolo")), effort: fc.constantFrom("high", "-x", "lo w") }, { requiredKeys: [] }),
    skill: fc.record({ id: fc.oneof(fc.constantFrom("lint", "triage"), text), args: fc.dictionary(key, value, { maxKeys: 3 }) }, { requiredKeys: [] }),
    steps: fc.array(fc.record({ id: text, title: text, instructions: text }, { requiredKeys: [] }), { maxLength: 3 }),
    git: fc.record({ startingBranch: branch, newBranch: branch }, { requiredKeys: [] }),
    publish: fc.record({ mode: fc.constantFrom("none", "branch", "pr", "push") }),
  },
  { requiredKeys: [] },
);

/** Plausible jobs: the schema's own fields with good, odd and hostile values. */
const job = fc.record(
  {
    id,
    type: fc.constantFrom("task", "job"),
    repository,
    repo: repository,
    targetRuntime: runtime,
    runtime,
    affinityKey: fc.oneof(text, secret),
    priority: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.jsonValue({ maxDepth: 1 })),
    maxAttempts: fc.integer({ min: -1, max: 25 }),
    instructions: text,
    ref: branch,
    model: fc.oneof(text, fc.constantFrom("gpt-5", "--dangerously-bypass-approvals-and-sandbox")),
    task,
    metadata: fc.dictionary(key, value, { maxKeys: 4 }),
  },
  { requiredKeys: ["repository"] },
);

/** Good jobs (the duplicate-id pool among them), so the corpus holds accepted and duplicate cases too. */
const good = fc.record(
  {
    id: fc.oneof(fc.constantFrom("dup-1", "dup-2", "dup-3"), fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/)),
    repository: fc.constantFrom("org/repo", "org/other", "https://github.com/org/repo.git", "git@github.com:org/repo"),
    instructions: fc.stringMatching(/^[a-z][a-z .,]{0,60}$/),
    runtime: fc.constantFrom("codex", "claude", "gemini"),
    ref: fc.constantFrom("main", "dev", "feature/x"),
    metadata: fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.oneof(fc.integer(), fc.boolean(), fc.stringMatching(/^[a-z ]{0,20}$/)), { maxKeys: 3 }),
  },
  { requiredKeys: ["repository", "instructions"] },
);

/** Every field of JobSubmissionSchema (and of task) given a value of any type. */
const wrongTypes = fc.oneof(
  fc.record(Object.fromEntries(SUBMISSION_KEYS.map((k) => [k, fc.jsonValue({ maxDepth: 2 })])), { requiredKeys: [] }),
  fc.record(Object.fromEntries(TASK_KEYS.map((k) => [k, fc.jsonValue({ maxDepth: 2 })])), { requiredKeys: [] }).map((t) => ({ repository: "org/repo", task: t })),
);

/** A secret, planted in one of many positions, as a value or as a key. */
const POSITIONS: Array<(s: string) => unknown> = [
  (s) => ({ repository: "org/repo", instructions: `run with ${s}` }),
  (s) => ({ repository: "org/repo", instructions: "x", [s]: 1 }),
  (s) => ({ id: s, repository: "org/repo", instructions: "x" }),
  (s) => ({ repository: "org/repo", instructions: "x", metadata: { [s]: "x" } }),
  (s) => ({ repository: "org/repo", instructions: "x", metadata: { deep: [{ a: [1, { b: s }] }] } }),
  (s) => ({ repository: "org/repo", task: { instructions: "x", [s]: { nested: 1 } } }),
  (s) => ({ repository: "org/repo", task: { skill: { id: "lint", args: { [s]: true, v: s } } } }),
  (s) => ({ repository: "org/repo", task: { skill: { id: s } } }),
  (s) => ({ repository: "org/repo", task: { instructions: "x", steps: [{ title: s }] } }),
  (s) => ({ repository: "org/repo", task: { instructions: "x", runtime: { model: s } } }),
  (s) => ({ repository: "org/repo", task: { instructions: "x", git: { newBranch: `feature/${s}` } } }),
  (s) => ({ repository: "org/repo", instructions: "x", affinityKey: s }),
  (s) => ({ repository: `https://github.com/${s}/repo`, instructions: "x" }),
  (s) => ({ repository: "org/repo", instructions: "x", runtime: s }),
  (s) => ({ repository: "org/repo", instructions: "x", type: s, priority: s }),
  (s) => ({ repository: "org/repo", instructions: "x", metadata: { password: PW, api_key: PW, GH_TOKEN: PW, note: s } }),
];
const planted = fc.tuple(fc.integer({ min: 0, max: POSITIONS.length - 1 }), secret).map(([p, s]) => json(POSITIONS[p]!(s)));

/**
 * A cut or insertion point moved out of any planted secret: damage that splits a secret makes
 * it a different string (no scanner could know it), and the leak check would then be about that.
 */
function outsideSecrets(bytes: Uint8Array, k: number): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const s of PLANTED) {
    for (let at = buf.indexOf(s); at >= 0; at = buf.indexOf(s, at + 1)) if (k > at && k < at + s.length) return at + s.length;
  }
  return k;
}

/** Damage done to the bytes of a job: truncation, invalid UTF-8, duplicated keys, nesting, size. */
const damaged = fc.oneof(
  fc.tuple(job, fc.double({ min: 0, max: 1, noNaN: true })).map(([j, at]) => {
    const b = json(j);
    return b.subarray(0, outsideSecrets(b, Math.floor(b.length * at)));
  }),
  fc.tuple(job, fc.nat(), fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x00])).map(([j, at, bad]) => {
    const b = json(j);
    const k = outsideSecrets(b, at % (b.length + 1));
    return new Uint8Array([...b.subarray(0, k), ...bad, ...b.subarray(k)]);
  }),
  fc.tuple(job, fc.constantFrom(...SUBMISSION_KEYS), value).map(([j, k, v]) => {
    const body = JSON.stringify(j).slice(1);
    return enc.encode(`{${JSON.stringify(k)}:${JSON.stringify(v)},${JSON.stringify(k)}:${JSON.stringify(v)}${body === "}" ? "}" : `,${body}`}`);
  }),
  fc.tuple(fc.integer({ min: 30, max: 20_000 }), fc.boolean(), fc.boolean(), secret).map(([n, arrays, closed, s]) => {
    const [open, close] = arrays ? ["[", "]"] : ['{"a":', "}"];
    return enc.encode(`{"repository":"org/repo","instructions":"x","metadata":${open.repeat(n)}"${s}"${closed ? close.repeat(n) : ""}${closed ? "}" : ""}`);
  }),
  fc.tuple(fc.integer({ min: 1_000, max: 150_000 }), fc.constantFrom("instructions", "affinityKey", "repository", "metadata"), fc.boolean()).map(([n, field, arr]) =>
    json({ repository: "org/repo", instructions: "x", [field]: arr ? Array.from({ length: Math.min(n, 30_000) }, (_, i) => i) : "x".repeat(n) }),
  ),
  fc.uint8Array({ maxLength: 400 }),
  fc.string({ unit: "binary", maxLength: 200 }).map((s) => enc.encode(s)),
);

const generated = fc.oneof(
  { arbitrary: good.map(json), weight: 2 },
  { arbitrary: job.map(json), weight: 4 },
  { arbitrary: wrongTypes.map(json), weight: 2 },
  { arbitrary: planted, weight: 3 },
  { arbitrary: damaged, weight: 3 },
);

// ---------------------------------------------------------------------------------------------

let stack: TestStack;
let intake: Intake;
const logLines: string[] = [];
const statusSeen: Array<{ subject: string; data: string }> = [];
let statusSub: Subscription;

beforeAll(async () => {
  // ack_wait 10 s (30 s in production): room for a slow machine; a redelivery loop shows anyway.
  stack = await startStack({ MOONMIND_ALLOW_LOCAL_REPOS: "false", MOONMIND_ACK_WAIT_MS: "10000" });
  statusSub = stack.nc.subscribe("status.>", { callback: (_err, m) => void statusSeen.push({ subject: m.subject, data: dec.decode(m.data) }) });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  intake = new Intake(await connectNats({ servers: stack.server.url, name: "intake" }), stack.config(), pino({ level: "debug", base: { actor: "intake" } }, sink));
  await intake.start();
});

afterAll(() => stopAll(statusSub && { close: () => statusSub.unsubscribe() }, intake, stack));

/** Every message of a stream, by sequence (a few hundred requests in flight at a time). */
async function readStream(jsm: JetStreamManager, stream: string): Promise<Array<{ subject: string; data: string }>> {
  const { first_seq, last_seq, messages } = (await jsm.streams.info(stream)).state;
  if (messages === 0) return [];
  const out: Array<{ subject: string; data: string }> = [];
  for (let seq = first_seq; seq <= last_seq; seq += 200) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(200, last_seq - seq + 1) }, (_, i) => jsm.streams.getMessage(stream, { seq: seq + i }).catch(() => null)),
    );
    for (const m of batch) if (m) out.push({ subject: m.subject, data: dec.decode(m.data) });
  }
  return out;
}

describe("the bad-input corpus", () => {
  it("gets a verdict for every case on its first delivery and leaks none of the planted secrets", async () => {
    const cases = [
      ...(await fixedCases()),
      ...fc.sample(generated, { numRuns: GENERATED, seed: SEED }).map((bytes, i) => ({ name: `generated #${i}`, bytes })),
    ];
    expect(cases.length).toBeGreaterThan(GENERATED);

    // What intake must answer, case by case, in the order the stream holds them.
    const config = stack.config();
    const opts: SubmissionOptions = {
      maxPayloadBytes: config.env.MOONMIND_MAX_PAYLOAD_BYTES,
      defaultRuntime: config.env.MOONMIND_DEFAULT_TASK_RUNTIME,
      allowLocalRepos: config.env.MOONMIND_ALLOW_LOCAL_REPOS,
    };
    let anonymous = 0;
    const accepted = new Set<string>();
    const expected = { routed: 0, duplicates: 0, rejectedOnJob: 0, rejectedOnSubmission: 0 };
    const namedRejections = new Map<string, string>(); // jobId -> the subject its rejection goes to
    const rejectedBeforeAccepted = new Set<string>();
    for (const c of cases) {
      const r = parseSubmission(c.bytes, { ...opts, newId: () => `anonymous-${++anonymous}` });
      if (r.ok) {
        if (accepted.has(r.job.id)) expected.duplicates++;
        else expected.routed++;
        accepted.add(r.job.id);
      } else if (accepted.has(r.jobId)) {
        expected.rejectedOnSubmission++;
        namedRejections.set(r.jobId, `status.submissions.${r.jobId}.rejected`);
      } else {
        expected.rejectedOnJob++;
        if (!r.jobId.startsWith("anonymous-")) namedRejections.set(r.jobId, `status.jobs.${r.jobId}.rejected`);
        rejectedBeforeAccepted.add(r.jobId);
      }
    }
    const rejections = expected.rejectedOnJob + expected.rejectedOnSubmission;
    expect(rejections).toBeGreaterThan(cases.length / 2);
    expect(expected.routed).toBeGreaterThan(10);

    // Raw, pipelined: the bytes as they are, no client-side checks.
    for (let i = 0; i < cases.length; i += 100) {
      await Promise.all(cases.slice(i, i + 100).map((c) => stack.js.publish(SUBJECTS.submit, c.bytes)));
    }

    // Every message delivered exactly once and settled: no nak, no redelivery, nothing left.
    await vi.waitFor(
      async () => {
        const info = await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER);
        expect(info.delivered.consumer_seq).toBe(cases.length);
        expect(info.ack_floor.consumer_seq).toBe(cases.length);
        expect(info.num_ack_pending).toBe(0);
      },
      { timeout: 25_000, interval: 100 },
    );
    const info = await stack.jsm.consumers.info(STREAMS.jobs, INTAKE_CONSUMER);
    expect(info).toMatchObject({ num_pending: 0, num_ack_pending: 0, num_redelivered: 0 });
    expect(logLines.filter((l) => /redelivered/.test(l))).toEqual([]);

    // Intake is still up: a good job after all that is routed.
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "corpus-after", repository: "org/repo", instructions: "x" }));
    await vi.waitFor(() => expect(statusSeen.some((e) => e.subject === "status.jobs.corpus-after.routed")).toBe(true), { timeout: 10_000 });

    // The verdicts: one per case, on the subjects they belong on.
    const count = (re: RegExp) => statusSeen.filter((e) => re.test(e.subject)).length;
    expect(count(/^status\.jobs\.[^.]+\.rejected$/)).toBe(expected.rejectedOnJob);
    expect(count(/^status\.submissions\.[^.]+\.rejected$/)).toBe(expected.rejectedOnSubmission);
    expect(count(/^status\.jobs\.[^.]+\.routed$/)).toBe(expected.routed + 1);
    const subjects = new Set(statusSeen.map((e) => e.subject));
    for (const [jobId, subject] of namedRejections) expect(subjects, `the rejection of ${jobId}`).toContain(subject);
    // A rejection under a routed job's id never lands in that job's history.
    for (const jobId of accepted) {
      if (!rejectedBeforeAccepted.has(jobId)) expect(subjects).not.toContain(`status.jobs.${jobId}.rejected`);
    }

    // DEAD holds one copy per rejection.
    const dead = await readStream(stack.jsm, STREAMS.dead);
    expect(dead).toHaveLength(rejections);

    // No planted secret anywhere: STATUS (live and stored), DEAD, the runs bucket, intake's log.
    const status = await readStream(stack.jsm, STREAMS.status);
    expect(status.length).toBeGreaterThanOrEqual(statusSeen.length);
    const kv = await new Kvm(stack.nc).open(BUCKETS.runs);
    const runs: string[] = [];
    for await (const k of await kv.keys()) runs.push(`${k} ${(await kv.get(k))?.string() ?? ""}`);
    expect(runs.length).toBe(accepted.size + 1);
    const places: Array<[string, string[]]> = [
      ["STATUS events", [...statusSeen, ...status].map((m) => `${m.subject} ${m.data}`)],
      ["DEAD messages", dead.map((m) => `${m.subject} ${m.data}`)],
      ["run records", runs],
      ["intake's log", logLines],
    ];
    for (const [where, texts] of places) {
      for (const fragment of FRAGMENTS) {
        const hit = texts.find((t) => t.includes(fragment));
        expect(hit, `${where} must not contain any part of a planted secret ('${fragment}')`).toBeUndefined();
      }
    }
  }, 60_000);
});

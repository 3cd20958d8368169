/**
 * The `moonmind` verbs as an operator runs them — a subprocess against a real nats-server, real
 * intake and worker actors (the stand-in codex) and the ops service in-process: human and --json
 * output and exit codes, and the papercuts of the first try (a malformed id, an id that never
 * existed, a closed pipe, the stack found from a subdirectory, duplicates and rejections under
 * `submit --wait`).
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { watchFilters } from "../../src/cli/commands/watch.js";
import { connectNats } from "../../src/nats/connect.js";
import { DeadListReplySchema, RunsGetReplySchema, RunsListReplySchema, ShardsReplySchema, WorkersReplySchema } from "../../src/schemas/ops.js";
import { quietLog, startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
const OPS_ACTOR = join(import.meta.dirname, "../../actors/ops/ops.ts");
const haveOps = existsSync(OPS_ACTOR);

let stack: TestStack;
let intake: Intake | undefined;
let worker: Worker | undefined;
let ops: { start(): Promise<void>; stop(): Promise<void> } | undefined;

const cli = (args: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string } = {}) =>
  execa(process.execPath, [BIN, ...args], {
    env: { ...stack.env, MOONMIND_LOG_LEVEL: "error", ...opts.env },
    reject: false,
    timeout: 60_000,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.input === undefined ? { stdin: "ignore" as const } : { input: opts.input }),
  });

async function startOps(): Promise<void> {
  const { Ops } = (await import(OPS_ACTOR)) as { Ops: new (...args: unknown[]) => { start(): Promise<void>; stop(): Promise<void> } };
  ops = new Ops(await connectNats({ servers: stack.server.url, name: "ops" }), stack.config(), quietLog);
  await ops.start();
}

beforeAll(async () => {
  stack = await startStack();
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-cli");
  if (haveOps) await startOps();
}, 60_000);

afterAll(() => stopAll(worker, ops, intake, stack));

// A CLI start costs 1-3 s on a busy machine: the tests give the subprocesses room.
const SLOW = { timeout: 180_000 };

describe("submit, logs, artifacts", SLOW, () => {
  it("runs a job to the end, then shows its output and artifacts, human and --json", async () => {
    const submit = await cli(["submit", "--repository", stack.repo, "--id", "cli-ok", "--instructions", "write NOTES.md: hello from the cli\nsay all done", "--wait"]);
    expect(submit.stderr).toBe("");
    expect(submit.exitCode).toBe(0);
    expect(submit.stdout).toMatch(/^job cli-ok submitted → jobs\.codex\.shard\.\d/m);
    expect(submit.stdout).toMatch(/cli-ok {2}succeeded CHANGES_READY/);

    const logs = await cli(["logs", "cli-ok"]);
    expect(logs.exitCode).toBe(0);
    expect(logs.stdout.length).toBeGreaterThan(0);
    const batches = (await cli(["logs", "cli-ok", "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l) as { jobId: string; seq: number; lines: string[] });
    expect(batches[0]).toMatchObject({ jobId: "cli-ok", seq: 1 });
    expect(batches.flatMap((b) => b.lines).join("\n")).toBe(logs.stdout);
    // --follow on a finished job replays and ends.
    expect((await cli(["logs", "cli-ok", "--follow"])).stdout).toBe(logs.stdout);

    const list = await cli(["artifacts", "cli-ok"]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^KIND +KEY +SIZE +STORED$/m);
    expect(list.stdout).toMatch(/^patch +cli-ok\/changes\.patch +\d+ B/m);
    const patch = await cli(["artifacts", "cli-ok", "patch"]);
    expect(patch.stdout).toContain("+hello from the cli");
    expect((await cli(["artifacts", "cli-ok", "message"])).stdout).toContain("all done");
    const out = join(stack.dir, "saved.patch");
    const saved = await cli(["artifacts", "cli-ok", "patch", "--out", out]);
    expect(saved.exitCode).toBe(0);
    expect(saved.stderr).toMatch(/saved cli-ok\/changes\.patch .* to /);
    expect((await readFile(out, "utf8")).trimEnd()).toBe(patch.stdout);
    const json = JSON.parse((await cli(["artifacts", "cli-ok", "--json"])).stdout) as { artifacts: Array<{ kind: string }> };
    expect(json.artifacts.map((a) => a.kind).sort()).toEqual(["log", "message", "patch"]);
  });

  it("names what exists when an artifact is missing, and refuses unknown kinds and malformed ids", async () => {
    const done = await cli(["submit", "--repository", stack.repo, "--id", "cli-nochange", "--instructions", "say nothing to change", "--wait", "--json"]);
    expect(done.exitCode).toBe(0);
    const missing = await cli(["artifacts", "cli-nochange", "patch"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/no changes\.patch for job cli-nochange — the agent changed nothing \(outcome NO_CHANGES\); it has: log \(output\.log\), message \(last-message\.md\)/);
    const none = await cli(["artifacts", "never-was"]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/job never-was has no artifacts/);
    expect((await cli(["artifacts", "cli-nochange", "diff"])).exitCode).toBe(2);
    const bad = await cli(["logs", "a.b"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/'a\.b' is not a valid job id/);
    expect(bad.stderr).not.toMatch(/illegal subject/i);
    expect((await cli(["logs", "never-was"])).stderr).toMatch(/no job never-was/);
  });

  it("says what became of a dead-lettered run with no patch, from its run record", async () => {
    const failed = await cli(["submit", "--repository", stack.repo, "--id", "cli-dead", "--instructions", "fail", "--max-attempts", "1", "--wait"]);
    expect(failed.exitCode).toBe(1);
    const missing = await cli(["artifacts", "cli-dead", "patch"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/no changes\.patch for job cli-dead — the run was dead-lettered after attempt 1 \(outcome FAILED\): AGENT_FAILED: .*; it has: log \(output\.log\)/);
    expect(missing.stderr).not.toMatch(/NO_CHANGES|changed nothing/);
  });

  it.skipIf(!haveOps)("says what became of a cancelled run with no patch, from its run record", async () => {
    const submitted = await cli(["submit", "--repository", stack.repo, "--id", "cli-stopped", "--instructions", "say working on it\nsleep 30000"]);
    expect(submitted.exitCode).toBe(0);
    await vi.waitFor(async () => expect((await stack.runs.get("cli-stopped"))?.record.state).toBe("running"), { timeout: 30_000, interval: 100 });
    const cancel = await cli(["runs", "cancel", "cli-stopped"]);
    expect(cancel.exitCode).toBe(0);
    await vi.waitFor(async () => expect((await stack.runs.get("cli-stopped"))?.record.state).toBe("cancelled"), { timeout: 30_000, interval: 100 });
    const missing = await cli(["artifacts", "cli-stopped", "patch"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/no changes\.patch for job cli-stopped — the run was cancelled \(outcome CANCELLED\): .*cancelled by an operator; it has: log \(output\.log\)/);
    expect(missing.stderr).not.toMatch(/NO_CHANGES|changed nothing/);
  });

  it("reports a duplicate id: same request exits 0, a different one exits 1", async () => {
    const same = await cli(["submit", "--repository", stack.repo, "--id", "cli-ok", "--instructions", "write NOTES.md: hello from the cli\nsay all done", "--wait"]);
    expect(same.stderr).toMatch(/cli-ok already submitted, state succeeded/);
    expect(same.exitCode).toBe(0);
    const differs = await cli(["submit", "--repository", stack.repo, "--id", "cli-ok", "--instructions", "something else", "--wait"]);
    expect(differs.stderr).toMatch(/cli-ok already submitted with a different request, state succeeded/);
    expect(differs.exitCode).toBe(1);

    // Submitted before by someone else (no JetStream dedupe for the CLI's message): intake's verdict, a duplicate event.
    await stack.js.publish("jobs.submit", JSON.stringify({ id: "cli-raw", repository: stack.repo, instructions: "say raw" }));
    expect((await cli(["watch", "cli-raw"])).exitCode).toBe(0);
    const again = await cli(["submit", "--repository", stack.repo, "--id", "cli-raw", "--instructions", "say raw", "--wait"]);
    expect(again.stderr).toMatch(/cli-raw already submitted, state succeeded/);
    expect(again.exitCode).toBe(0);
    const clash = await cli(["submit", "--repository", stack.repo, "--id", "cli-raw", "--instructions", "say other"]);
    expect(clash.stderr).toMatch(/cli-raw already submitted with a different request, state succeeded/);
    expect(clash.exitCode).toBe(1);
  });

  it("follows a running job's output live with logs --follow, and ends with the job", async () => {
    const submitted = await cli(["submit", "--repository", stack.repo, "--id", "cli-live", "--instructions", "sleep 2500\nsay finished late"]);
    expect(submitted.exitCode).toBe(0);
    const follow = await cli(["logs", "cli-live", "--follow"]);
    expect(follow.exitCode).toBe(0);
    expect(follow.stdout).toContain("finished late");
    expect((await stack.runs.get("cli-live"))?.record.state).toBe("succeeded");
  });

  it("prints a waiting job's reason once under --wait", async () => {
    // No claude worker: the job waits, and says why.
    const r = await cli(["submit", "--repository", stack.repo, "--id", "cli-waits", "--runtime", "claude", "--instructions", "x", "--wait", "--timeout", "5"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/gave up waiting after 5 s; the job goes on \(moonmind watch cli-waits\)/);
    expect(r.stdout.match(/cli-waits {2}waiting: /g) ?? []).toHaveLength(1);
  });

  it("exits 2 when intake rejects the job under --wait", async () => {
    // This CLI allows local repositories; an intake that does not refuses the job.
    await intake?.stop();
    intake = await startIntake(stack, { MOONMIND_ALLOW_LOCAL_REPOS: "false" });
    try {
      const r = await cli(["submit", "--repository", stack.repo, "--id", "cli-refused", "--instructions", "x", "--wait"]);
      expect(r.stdout).toMatch(/cli-refused {2}rejected: /);
      expect(r.exitCode).toBe(2);
    } finally {
      await intake.stop();
      intake = await startIntake(stack);
    }
  });
});

describe("watch", SLOW, () => {
  it("says so, after a bounded wait, for an id that never existed", async () => {
    const started = Date.now();
    const r = await cli(["watch", "no-such-job", "--appear-timeout", "1"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/no job no-such-job: no run record in KV runs and no events on STATUS after 1 s/);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect((await cli(["watch", "bad id"])).exitCode).toBe(2);
  });

  it("ends quietly when the reader of its output goes away", async () => {
    const watch = execa(process.execPath, [BIN, "watch", "--workers", "--heartbeats", "--since", "all"], {
      env: { ...stack.env, MOONMIND_LOG_LEVEL: "error" },
      reject: false,
      timeout: 30_000,
      stdin: "ignore",
    });
    const head = watch.pipe("head", ["-n", "1"]);
    const [w, h] = await Promise.all([watch, head]);
    expect(h.stdout.split("\n")).toHaveLength(1);
    expect(w.exitCode).toBe(0);
    expect(w.stderr).not.toMatch(/EPIPE|Error/);
  });

  it("leaves heartbeats out of --workers unless --heartbeats (they are never even delivered)", () => {
    const filters = watchFilters(undefined, { workers: true });
    expect(filters).toContain("status.workers.*.paused");
    expect(filters).not.toContain("status.workers.*.heartbeat");
    expect(watchFilters(undefined, { workers: true, heartbeats: true })).toContain("status.workers.*.heartbeat");
    expect(watchFilters("j1", {})).toEqual(["status.jobs.j1.*", "status.submissions.j1.*"]);
  });
});

describe("the dev stack from a subdirectory", SLOW, () => {
  it("finds var/nats.url in a parent directory of the project", async () => {
    const project = join(stack.dir, "project");
    const sub = join(project, "src", "deep");
    await mkdir(join(project, "var"), { recursive: true });
    await mkdir(sub, { recursive: true });
    await writeFile(join(project, "package.json"), JSON.stringify({ name: "moonmind-runtime" }));
    await writeFile(join(project, "var", "nats.url"), `${stack.server.url}\n`);
    const r = await execa(process.execPath, [BIN, "logs", "cli-ok"], {
      cwd: sub,
      env: { MOONMIND_LOG_LEVEL: "error", NATS_URL: "", MOONMIND_DATA_DIR: "" }, // unset: the default ./var
      reject: false,
      timeout: 30_000,
      stdin: "ignore",
    });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });
});

describe.skipIf(!haveOps)(`verbs over the ops service${haveOps ? "" : " (skipped: actors/ops/ops.ts does not exist yet)"}`, SLOW, () => {
  it("shards and workers, human and --json", async () => {
    const human = await cli(["shards"]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^SHARD +QUEUED +PENDING +ACK PENDING +REDELIVERED +OLDEST +WORKERS +VOLUME +LATEST RUN$/m);
    expect(human.stdout).toMatch(/^jobs\.codex\.shard\.0 +\d+ +\d+ +\d+ .*w-cli/m);
    expect(human.stdout).not.toMatch(/\x1b\[/); // no colour off a TTY
    const json = ShardsReplySchema.parse(JSON.parse((await cli(["shards", "--json", "--runtime", "codex"])).stdout));
    expect(json.shards.map((s) => s.subject)).toEqual(["jobs.codex.shard.0", "jobs.codex.shard.1", "jobs.codex.shard.2"]);

    const workers = await cli(["workers"]);
    expect(workers.exitCode).toBe(0);
    expect(workers.stdout).toMatch(/^WORKER +STATE +RUNTIMES/m);
    expect(workers.stdout).toMatch(/^w-cli +\S+ +codex/m);
    expect(WorkersReplySchema.parse(JSON.parse((await cli(["workers", "--json"])).stdout)).workers.map((w) => w.workerId)).toContain("w-cli");
    expect((await cli(["shards", "--runtime", "cobol"])).exitCode).toBe(2);
  });

  it("runs list, get, preflight, cancel, retry; errors exit 1 (not found) or 2 (bad request)", async () => {
    const list = await cli(["runs", "list", "--state", "succeeded"]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^ID +STATE +RUNTIME +SHARD +REPOSITORY +ATTEMPTS +UPDATED +NOTE$/m);
    expect(list.stdout).toMatch(/^cli-ok +succeeded +codex/m);
    const listed = RunsListReplySchema.parse(JSON.parse((await cli(["runs", "list", "--json", "--limit", "1"])).stdout));
    expect(listed.runs).toHaveLength(1);

    const get = await cli(["runs", "get", "cli-ok"]);
    expect(get.exitCode).toBe(0);
    expect(get.stdout).toMatch(/^state +succeeded$/m);
    expect(get.stdout).toMatch(/cli-ok {2}succeeded CHANGES_READY/);
    expect(RunsGetReplySchema.parse(JSON.parse((await cli(["runs", "get", "cli-ok", "--json"])).stdout)).record.jobId).toBe("cli-ok");
    const unknown = await cli(["runs", "get", "never-was"]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toMatch(/^moonmind: ops\.runs\.get: /);
    expect((await cli(["runs", "get", "bad.id"])).exitCode).toBe(2);
    // An empty --repository reaches the service, which calls the request bad: a usage error.
    const bad = await cli(["runs", "list", "--repository", ""]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/ops\.runs\.list: /);

    const preflight = await cli(["runs", "preflight", "cli-ok", "--force-refresh"]);
    expect(preflight.exitCode).toBe(0);
    expect(preflight.stdout).toMatch(/^status +passed$/m);

    // A claude job waits: no claude worker. Cancel it while queued, then retry it.
    const queued = await cli(["submit", "--repository", stack.repo, "--id", "cli-cancel", "--runtime", "claude", "--instructions", "x", "--json"]);
    expect(queued.exitCode).toBe(0);
    let cancel = await cli(["runs", "cancel", "cli-cancel"]);
    for (let i = 0; i < 20 && cancel.exitCode !== 0; i++) cancel = await cli(["runs", "cancel", "cli-cancel"]); // until intake wrote the record
    expect(cancel.stdout).toMatch(/cli-cancel cancelled/);
    const retry = await cli(["runs", "retry", "cli-cancel", "--json"]);
    expect(retry.exitCode).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ runId: "cli-cancel", state: "queued" });
    // Cancelled again: watching it afterwards follows past the first end, through `requeued`, to the last.
    expect((await cli(["runs", "cancel", "cli-cancel"])).stdout).toMatch(/cli-cancel cancelled/);
    const watched = await cli(["watch", "cli-cancel", "--json"]);
    expect(watched.exitCode).toBe(1);
    const types = watched.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types.filter((t) => t === "cancelled")).toHaveLength(2);
    expect(types.indexOf("requeued")).toBeGreaterThan(types.indexOf("cancelled"));
    expect(types.at(-1)).toBe("cancelled");
  });

  it("dead ls and replay", async () => {
    const ls = await cli(["dead", "ls"]);
    expect(ls.exitCode).toBe(0);
    expect(ls.stdout).toMatch(/^SEQ +JOB +AT +STAGE +REASON$/m);
    expect(ls.stdout).toMatch(/cli-refused +.* intake /);
    const letters = DeadListReplySchema.parse(JSON.parse((await cli(["dead", "ls", "--json"])).stdout));
    expect(letters.letters.some((l) => l.letter.jobId === "cli-refused")).toBe(true);
    const replay = await cli(["dead", "replay", "cli-refused"]);
    expect(replay.exitCode).toBe(0);
    expect(replay.stdout).toMatch(/^replayed dead letter \d+ \(cli-refused: .*\) as \S+/);
    expect((await cli(["dead", "replay"])).exitCode).toBe(2);
  });

  it("says how to start the ops service when none answers", async () => {
    await ops?.stop();
    ops = undefined;
    const r = await cli(["shards"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no ops service answered on ops.shards: start the stack (npm start) or `moonmind ops`");
  });
});

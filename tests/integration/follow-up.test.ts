/**
 * Follow-up jobs (`task.resume: {runId}`) through intake and a worker, with the stand-in codex
 * (which keeps no session: each follow-up says so and starts afresh on the earlier result). The
 * real CLIs continuing their sessions are tests/e2e/agents.test.ts.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { OBJECT_STORES, SUBJECTS, artifactKey } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;
let origin: string;
const gitIn = (dir: string, ...args: string[]) => execFileSync("git", [`--git-dir=${dir}`, ...args], { encoding: "utf8" }).trim();

beforeAll(async () => {
  stack = await startStack({ MOONMIND_AGENT_SANDBOX: "none" });
  origin = join(stack.dir, "origin.git");
  execFileSync("git", ["clone", "-q", "--bare", stack.repo, origin]);
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-follow", { MOONMIND_GIT_AUTHOR_NAME: "Fleet Bot", MOONMIND_GIT_AUTHOR_EMAIL: "fleet@example.test" });
});

afterAll(() => stopAll(events, worker, intake, stack));

const submit = (body: Record<string, unknown>) => stack.js.publish(SUBJECTS.submit, JSON.stringify(body));
const ended = (id: string) => events.waitFor((e) => e.jobId === id && ["succeeded", "failed", "rejected"].includes(e.type), 30_000);
const patchOf = async (id: string) => new TextDecoder().decode((await (await new Objm(stack.nc).open(OBJECT_STORES.artifacts)).getBlob(artifactKey(id, "changes.patch")))!);
const record = async (id: string) => (await stack.runs.get(id))!.record;

describe("a follow-up", () => {
  it("starts from the earlier run's change, and a chain of them from every change in order", async () => {
    await submit({ id: "fu-a", repository: origin, instructions: "write a.txt: from a\nsay a done" });
    expect(await ended("fu-a")).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
    await submit({ id: "fu-b", repository: origin, task: { instructions: "write b.txt: from b\nsay b done", resume: { runId: "fu-a" } } });
    expect(await ended("fu-b")).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
    // The stand-in keeps no session: said on the record and in its progress, and it ran all the same.
    expect((await record("fu-b")).resumed).toEqual({ runId: "fu-a", from: "patch", session: "not-saved" });
    expect(events.events.some((e) => e.jobId === "fu-b" && e.type === "progress" && /continuing run fu-a from its changes; it left no session/.test(String(e.message)))).toBe(true);
    // Its patch is its own change, on top of the earlier one.
    const b = await patchOf("fu-b");
    expect(b).toContain("+from b");
    expect(b).not.toContain("a.txt");

    await submit({ id: "fu-c", repository: origin, task: { instructions: "write c.txt: from c\nsay c done", resume: { runId: "fu-b" }, git: { newBranch: "follow/c" }, publish: { mode: "branch" } } });
    expect(await ended("fu-c")).toMatchObject({ type: "succeeded", outcome: "PUBLISHED_BRANCH" });
    // The branch holds the whole chain: each earlier change committed by the worker, then this one.
    const head = gitIn(origin, "rev-parse", "refs/heads/follow/c");
    expect(gitIn(origin, "ls-tree", "--name-only", head).split("\n")).toEqual(expect.arrayContaining(["a.txt", "b.txt", "c.txt"]));
    expect(gitIn(origin, "log", "--format=%an|%s", "-3", head).split("\n")).toEqual(["Fleet Bot|write c.txt: from c", "Fleet Bot|Changes of run fu-b", "Fleet Bot|Changes of run fu-a"]);
    expect(gitIn(origin, "rev-parse", `${head}~3`)).toBe(gitIn(origin, "rev-parse", "refs/heads/main"));
    expect((await record("fu-c")).baseCommit).toBe(gitIn(origin, "rev-parse", `${head}^`));
  });

  it("of a published run starts from the commit it pushed", async () => {
    await submit({ id: "fu-p", repository: origin, task: { instructions: "write p.txt: published\nsay p done", git: { newBranch: "follow/p" }, publish: { mode: "branch" } } });
    expect(await ended("fu-p")).toMatchObject({ type: "succeeded", outcome: "PUBLISHED_BRANCH" });
    const pushed = (await record("fu-p")).result!.published!.commit;
    await submit({ id: "fu-q", repository: origin, task: { instructions: "write q.txt: after it\nsay q done", resume: { runId: "fu-p" } } });
    expect(await ended("fu-q")).toMatchObject({ type: "succeeded", outcome: "CHANGES_READY" });
    expect(await record("fu-q")).toMatchObject({ baseCommit: pushed, resumed: { runId: "fu-p", from: "branch", session: "not-saved" } });
    const q = await patchOf("fu-q");
    expect(q).toContain("+after it");
    expect(q).not.toContain("p.txt");
  });

  it("published on the earlier run's branch adds to it: a fast-forward", async () => {
    const before = gitIn(origin, "rev-parse", "refs/heads/follow/p");
    await submit({ id: "fu-r", repository: origin, task: { instructions: "write r.txt: on the same branch\nsay r done", resume: { runId: "fu-p" }, git: { newBranch: "follow/p" }, publish: { mode: "branch" } } });
    expect(await ended("fu-r")).toMatchObject({ type: "succeeded", outcome: "PUBLISHED_BRANCH" });
    const head = gitIn(origin, "rev-parse", "refs/heads/follow/p");
    expect(gitIn(origin, "rev-parse", `${head}^`)).toBe(before);
    expect(gitIn(origin, "ls-tree", "--name-only", head).split("\n")).toEqual(expect.arrayContaining(["p.txt", "r.txt"]));
  });

  it("is refused at intake, with the reason, when the run it names cannot be continued", async () => {
    await submit({ id: "fu-failed", repository: origin, maxAttempts: 1, instructions: "fail" });
    expect(await ended("fu-failed")).toMatchObject({ type: "failed" });
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ["fu-none", { repository: origin, task: { instructions: "say x", resume: { runId: "no-such-run" } } }, /there is no run no-such-run/],
      ["fu-of-failed", { repository: origin, task: { instructions: "say x", resume: { runId: "fu-failed" } } }, /run fu-failed is (failed|dead_letter); only a succeeded run can be continued/],
      ["fu-elsewhere", { repository: stack.repo, task: { instructions: "say x", resume: { runId: "fu-a" } } }, /run fu-a worked on .*origin\.git, not .*; a follow-up continues on the same repository/],
      ["fu-self", { repository: origin, task: { instructions: "say x", resume: { runId: "fu-self" } } }, /names this job itself/],
      ["fu-both", { repository: origin, task: { instructions: "say x", resume: { runId: "fu-a" }, git: { startingBranch: "main" } } }, /leave out task\.git\.startingBranch/],
    ];
    for (const [id, body, reason] of cases) {
      await submit({ id, ...body });
      expect(await ended(id), id).toMatchObject({ type: "rejected", reason: expect.stringMatching(reason) });
      expect(await stack.runs.get(id), id).toBeUndefined();
    }
  });
});

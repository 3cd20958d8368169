import { describe, expect, it } from "vitest";
import { createActor, fromPromise, SimulatedClock, toPromise, waitFor } from "xstate";
import {
  jobMachine,
  type AgentResult,
  type ClaimResult,
  type Collected,
  type JobReport,
  type Workspace,
} from "../../machines/job.machine.js";
import { PermanentError } from "../../src/errors.js";
import type { JobRequest } from "../../src/schemas/job.js";
import type { PreflightResult } from "../../src/schemas/run.js";

const job: JobRequest = {
  id: "job-1",
  type: "task",
  repository: "org/repo",
  targetRuntime: "codex",
  maxAttempts: 3,
  task: { instructions: "fix it", runtime: { mode: "codex" } },
};

const workspace: Workspace = { dir: "/tmp/ws", baseCommit: "abc" };
const passed: PreflightResult = { status: "passed", message: "ok", checkedAt: "t" };

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An agent that runs until it is stopped, and tells whether it was. */
function hangingAgent() {
  let aborted = false;
  return {
    run: (signal: AbortSignal) =>
      new Promise<AgentResult>(() => {
        signal.addEventListener("abort", () => (aborted = true));
      }),
    aborted: () => aborted,
  };
}

interface Fakes {
  claim?: () => Promise<ClaimResult>;
  preflight?: () => Promise<PreflightResult>;
  prepareWorkspace?: () => Promise<Workspace>;
  runAgent?: (signal: AbortSignal) => Promise<AgentResult>;
  complete?: () => Promise<void>;
}

function start(fakes: Fakes = {}, attempt = 1) {
  const reports: JobReport[] = [];
  const calls: string[] = [];
  let keepAlives = 0;
  const failures: Array<{ state: string; code: string }> = [];
  const retries: number[] = [];
  const clock = new SimulatedClock();
  const machine = jobMachine.provide({
    actors: {
      claim: fromPromise(async () => (fakes.claim ? fakes.claim() : ({ kind: "claimed", attempt }) as ClaimResult)),
      preflight: fromPromise(async () => (fakes.preflight ? fakes.preflight() : passed)),
      prepareWorkspace: fromPromise(async () => (fakes.prepareWorkspace ? fakes.prepareWorkspace() : workspace)),
      runAgent: fromPromise(async ({ signal }) =>
        fakes.runAgent ? fakes.runAgent(signal) : { exitCode: 0, lastMessage: "done" },
      ),
      collectArtifacts: fromPromise(async (): Promise<Collected> => ({ outcome: "CHANGES_READY", artifacts: ["job-1/changes.patch"] })),
      complete: fromPromise(async () => {
        calls.push("complete");
        if (fakes.complete) await fakes.complete();
      }),
      requeue: fromPromise(async () => {
        calls.push("requeue");
      }),
      recordRetry: fromPromise(async ({ input }) => {
        retries.push(input.delayMs);
      }),
      recordFailure: fromPromise(async ({ input }) => {
        failures.push({ state: input.state, code: input.error.code });
      }),
      cleanup: fromPromise(async () => {
        calls.push("cleanup");
      }),
    },
    actions: {
      report: (_, params) => {
        reports.push(params);
      },
      keepAlive: () => {
        keepAlives++;
      },
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      job,
      keepAliveMs: 10_000,
      jobTimeoutMs: 60_000,
      retryDelay: (a) => 1_000 * 2 ** (a - 1),
      requeueDelayMs: 5_000,
    },
  });
  actor.start();
  return { actor, clock, reports, calls, failures, retries, keepAlives: () => keepAlives };
}

describe("job machine", () => {
  it("runs a job to success and settles with ack", async () => {
    const t = start();
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "ack" });
    expect(t.reports.map((r) => r.type)).toEqual(["claimed", "preflight", "started", "succeeded"]);
    expect(t.reports.at(-1)).toMatchObject({ outcome: "CHANGES_READY", artifacts: ["job-1/changes.patch"] });
    expect(t.calls).toEqual(["complete", "cleanup"]);
  });

  it("keeps the message alive on every keepAlive period while the agent runs, and stops after", async () => {
    const agent = deferred<AgentResult>();
    const t = start({ runAgent: () => agent.promise });
    await waitFor(t.actor, (s) => s.matches("running"));
    t.clock.increment(9_999);
    expect(t.keepAlives()).toBe(0);
    t.clock.increment(1);
    expect(t.keepAlives()).toBe(1);
    for (let i = 0; i < 3; i++) t.clock.increment(10_000);
    expect(t.keepAlives()).toBe(4);
    agent.resolve({ exitCode: 0 });
    await toPromise(t.actor);
    for (let i = 0; i < 10; i++) t.clock.increment(10_000);
    expect(t.keepAlives()).toBe(4);
  });

  it("stops the agent at the timeout and retries with the attempt's backoff", async () => {
    const agent = hangingAgent();
    const t = start({ runAgent: agent.run });
    await waitFor(t.actor, (s) => s.matches("running"));
    t.clock.increment(60_000);
    const out = await toPromise(t.actor);
    expect(agent.aborted()).toBe(true);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 1_000 });
    expect(t.retries).toEqual([1_000]);
    expect(t.reports.at(-1)).toMatchObject({ type: "retrying", attempt: 1, error: { code: "TIMEOUT" } });
  });

  it("dead-letters a retryable failure once the attempts are spent", async () => {
    const t = start({ runAgent: async () => ({ exitCode: 3 }) }, 3);
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "dead_letter", code: "AGENT_FAILED" }]);
    expect(t.reports.at(-1)).toMatchObject({ type: "failed", state: "dead_letter", attempt: 3 });
  });

  it("fails a permanent error at once, whatever attempts remain", async () => {
    const t = start({
      prepareWorkspace: async () => {
        throw new PermanentError("LOCAL_REPO_DISALLOWED", "local repositories are disabled");
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "failed", code: "LOCAL_REPO_DISALLOWED" }]);
    expect(t.calls).toEqual(["cleanup"]);
  });

  it.each([
    [{ kind: "skip", reason: "succeeded already" } as ClaimResult, { kind: "ack" }],
    [{ kind: "busy", retryInMs: 7_000, holder: "w2" } as ClaimResult, { kind: "nak", delayMs: 7_000 }],
  ])("settles a claim of %o without running", async (claim, settlement) => {
    const t = start({ claim: async () => claim });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual(settlement);
    expect(t.reports).toEqual([]);
    expect(t.calls).toEqual([]);
  });

  it("dead-letters a job whose attempts were all spent by dead workers", async () => {
    const t = start({ claim: async () => ({ kind: "exhausted", attempt: 3 }) });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "dead_letter", code: "ATTEMPTS_EXHAUSTED" }]);
  });

  it("hands the message back when the run store cannot be reached", async () => {
    const t = start({
      claim: async () => {
        throw new Error("timeout");
      },
    });
    expect((await toPromise(t.actor)).settlement).toEqual({ kind: "nak", delayMs: 5_000 });
  });

  it("requeues without running when preflight fails", async () => {
    const t = start({ preflight: async () => ({ status: "failed", message: "run tools/auth-codex-volume.sh", checkedAt: "t" }) });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 5_000 });
    expect(t.calls).toEqual(["requeue", "cleanup"]);
    expect(t.reports.map((r) => r.type)).toEqual(["claimed", "preflight", "retrying"]);
    expect(t.reports.at(-1)).toMatchObject({ error: { code: "PREFLIGHT_FAILED" }, delayMs: 5_000 });
  });

  it("requeues a job whose output shows the login expired", async () => {
    const t = start({ runAgent: async () => ({ exitCode: 1, authExpired: true }) }, 3);
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 5_000 });
    expect(t.calls).toContain("requeue");
    expect(t.failures).toEqual([]);
  });

  it("cancels a running job, stops the agent and settles with term", async () => {
    const agent = hangingAgent();
    const t = start({ runAgent: agent.run });
    await waitFor(t.actor, (s) => s.matches("running"));
    t.actor.send({ type: "CANCEL", reason: "cancelled by operator" });
    const out = await toPromise(t.actor);
    expect(agent.aborted()).toBe(true);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "cancelled", code: "CANCELLED" }]);
    expect(t.reports.at(-1)).toEqual({ type: "cancelled", reason: "cancelled by operator" });
  });

  it("leaves the message alone when another worker took the run record over", async () => {
    const t = start({
      complete: async () => {
        throw new Error("wrong last sequence");
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "none" });
    expect(t.reports.map((r) => r.type)).not.toContain("succeeded");
  });
});

describe("job machine: worker stopping", () => {
  it("hands a running job back at once without spending its attempt", async () => {
    const agent = hangingAgent();
    const t = start({ runAgent: agent.run });
    await waitFor(t.actor, (s) => s.matches("running"));
    t.actor.send({ type: "RELEASE", reason: "worker stopping" });
    const out = await toPromise(t.actor);
    expect(agent.aborted()).toBe(true);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 0 });
    expect(t.calls).toEqual(["requeue", "cleanup"]);
    expect(t.failures).toEqual([]);
  });
});

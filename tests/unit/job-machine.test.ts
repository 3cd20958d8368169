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
import { RunConflictError } from "../../src/runs/store.js";
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

/**
 * An agent that runs until it is stopped, and tells whether it was. Like a real CLI in its
 * SIGTERM grace, it is gone only when the test says so (`exit()`), unless `exitsAtOnce`.
 */
function hangingAgent(exitsAtOnce = true) {
  let aborted = false;
  const exited = deferred<AgentResult>();
  return {
    run: (signal: AbortSignal) =>
      new Promise<AgentResult>((resolve) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          if (exitsAtOnce) exited.resolve({ exitCode: 143 });
        });
        void exited.promise.then(resolve);
      }),
    exited: exited.promise,
    exit: () => exited.resolve({ exitCode: 143 }),
    aborted: () => aborted,
  };
}

interface Fakes {
  claim?: () => Promise<ClaimResult>;
  preflight?: () => Promise<PreflightResult>;
  prepareWorkspace?: () => Promise<Workspace>;
  runAgent?: (signal: AbortSignal) => Promise<AgentResult>;
  recordExit?: () => Promise<void>;
  collectArtifacts?: () => Promise<Collected>;
  complete?: () => Promise<void>;
}

function start(fakes: Fakes = {}, attempt = 1) {
  const reports: JobReport[] = [];
  const calls: string[] = [];
  const failures: Array<{ state: string; code: string }> = [];
  const retries: number[] = [];
  const clock = new SimulatedClock();
  let agentRun: Promise<AgentResult> | undefined;
  const machine = jobMachine.provide({
    actors: {
      claim: fromPromise(async () => (fakes.claim ? fakes.claim() : ({ kind: "claimed", attempt }) as ClaimResult)),
      preflight: fromPromise(async () => (fakes.preflight ? fakes.preflight() : passed)),
      prepareWorkspace: fromPromise(async () => (fakes.prepareWorkspace ? fakes.prepareWorkspace() : workspace)),
      runAgent: fromPromise(({ signal }) => {
        calls.push("runAgent");
        agentRun = fakes.runAgent ? fakes.runAgent(signal) : Promise.resolve({ exitCode: 0, lastMessage: "done" });
        return agentRun;
      }),
      agentExited: fromPromise(async () => {
        await agentRun;
        calls.push("agentExited");
      }),
      recordExit: fromPromise(async () => {
        calls.push("recordExit");
        if (fakes.recordExit) await fakes.recordExit();
      }),
      collectArtifacts: fromPromise(async (): Promise<Collected> => {
        calls.push("collectArtifacts");
        return fakes.collectArtifacts ? fakes.collectArtifacts() : { outcome: "CHANGES_READY", artifacts: ["job-1/changes.patch"] };
      }),
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
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      job,
      jobTimeoutMs: 60_000,
      retryDelay: (a) => 1_000 * 2 ** (a - 1),
      requeueDelayMs: 5_000,
    },
  });
  actor.start();
  return { actor, clock, reports, calls, failures, retries };
}

describe("job machine", () => {
  it("runs a job to success and settles with ack", async () => {
    const t = start();
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "ack" });
    expect(t.reports.map((r) => r.type)).toEqual(["claimed", "preflight", "started", "succeeded"]);
    expect(t.reports.at(-1)).toMatchObject({ outcome: "CHANGES_READY", artifacts: ["job-1/changes.patch"] });
    expect(t.calls).toEqual(["runAgent", "recordExit", "collectArtifacts", "complete", "cleanup"]);
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
        throw new RunConflictError("run job-1 is no longer held by w1 attempt 1");
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "none" });
    expect(t.reports.map((r) => r.type)).not.toContain("succeeded");
  });

  it("hands the message back, never leaves it, when a record write fails for any other reason", async () => {
    const t = start({
      complete: async () => {
        throw Object.assign(new Error("could not store the run record: TIMEOUT"), { name: "StoreUnavailableError", code: "STORE_UNAVAILABLE" });
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 5_000 });
    expect(t.reports.map((r) => r.type)).not.toContain("succeeded");
    expect(t.failures).toEqual([]);
  });

  it("keeps a finished agent's result when the store is away: no failed attempt, no retry, the message goes back", async () => {
    const t = start({
      collectArtifacts: async () => {
        throw Object.assign(new Error("could not store job-1/output.log"), { name: "StoreUnavailableError", code: "STORE_UNAVAILABLE" });
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 5_000 });
    expect(t.retries).toEqual([]);
    expect(t.failures).toEqual([]);
    expect(t.reports.map((r) => r.type)).toEqual(["claimed", "preflight", "started"]);
  });

  it("ends a job whose run record is missing with a failed event naming why", async () => {
    const t = start({ claim: async () => ({ kind: "missing", reason: "job job-1 has no run record" }) });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "failed", code: "RUN_RECORD_MISSING" }]);
    expect(t.reports).toEqual([
      { type: "failed", attempt: 0, state: "failed", error: { code: "RUN_RECORD_MISSING", message: "job job-1 has no run record" } },
    ]);
    expect(t.calls).not.toContain("runAgent");
  });

  it("refuses a shard message that disagrees with its run record, without touching the job's history", async () => {
    const t = start({ claim: async () => ({ kind: "refused", reason: "disagrees with the run record" }) });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.reports).toEqual([]);
    expect(t.calls).toEqual([]);
  });
});

describe("job machine: the agent's finish is on the record first", () => {
  it("collects nothing until the record says the agent has finished", async () => {
    const noted = deferred<void>();
    const t = start({ recordExit: () => noted.promise });
    await waitFor(t.actor, (s) => s.matches("exited"));
    await Promise.resolve();
    expect(t.calls).toEqual(["runAgent", "recordExit"]);
    noted.resolve();
    expect((await toPromise(t.actor)).settlement).toEqual({ kind: "ack" });
    expect(t.calls).toEqual(["runAgent", "recordExit", "collectArtifacts", "complete", "cleanup"]);
  });

  it("leaves the message alone when the run was taken over before the finish was recorded", async () => {
    const t = start({
      recordExit: async () => {
        throw new RunConflictError("run job-1 is no longer held by w1 attempt 1");
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "none" });
    expect(t.calls).toEqual(["runAgent", "recordExit", "cleanup"]);
    expect(t.failures).toEqual([]);
  });

  it("hands the message back, judging nothing, when the store stays away", async () => {
    const t = start({
      recordExit: async () => {
        throw Object.assign(new Error("could not store the run record"), { name: "StoreUnavailableError", code: "STORE_UNAVAILABLE" });
      },
    });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "nak", delayMs: 5_000 });
    expect(t.failures).toEqual([]);
    expect(t.retries).toEqual([]);
  });

  it("does not record a finish for an agent that failed", async () => {
    const t = start({ runAgent: async () => ({ exitCode: 1 }) });
    await toPromise(t.actor);
    expect(t.calls).not.toContain("recordExit");
    expect(t.retries).toHaveLength(1);
  });

  it("ends a run whose agent finished on a dead worker as failed, RESULT_LOST, without running anything", async () => {
    const reason = "the agent of attempt 2 finished on worker w2, which stopped before storing its result";
    const t = start({ claim: async () => ({ kind: "lost", attempt: 2, reason }) });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "failed", code: "RESULT_LOST" }]);
    expect(t.reports).toEqual([{ type: "failed", attempt: 2, state: "failed", error: { code: "RESULT_LOST", message: reason } }]);
    expect(t.calls).toEqual(["cleanup"]);
  });
});

describe("job machine: cancel before the agent starts", () => {
  it("records cancelled from preflight without preparing or running anything", async () => {
    const check = deferred<PreflightResult>();
    const t = start({ preflight: () => check.promise });
    await waitFor(t.actor, (s) => s.matches("preflight"));
    t.actor.send({ type: "CANCEL", reason: "cancelled by operator" });
    const out = await toPromise(t.actor);
    expect(out.settlement).toEqual({ kind: "term" });
    expect(t.failures).toEqual([{ state: "cancelled", code: "CANCELLED" }]);
    expect(t.calls).not.toContain("runAgent");
  });
});

describe("job machine: stopping an agent waits until it is gone", () => {
  it.each([
    ["a cancel", (t: ReturnType<typeof start>) => t.actor.send({ type: "CANCEL", reason: "cancelled by operator" }), "recordFailure"],
    ["the timeout", (t: ReturnType<typeof start>) => t.clock.increment(60_000), "recordRetry"],
    ["a hand-back", (t: ReturnType<typeof start>) => t.actor.send({ type: "RELEASE", reason: "worker stopping" }), "requeue"],
  ])("after %s, nothing is recorded or removed while the agent lives", async (_, stop, next) => {
    const agent = hangingAgent(false);
    const t = start({ runAgent: agent.run });
    await waitFor(t.actor, (s) => s.matches("running"));
    stop(t);
    await waitFor(t.actor, (s) => s.matches("stopping"));
    expect(agent.aborted()).toBe(true);
    // The agent is in its SIGTERM grace: the job holds still.
    await Promise.resolve();
    expect(t.actor.getSnapshot().value).toBe("stopping");
    expect(t.calls).toEqual(["runAgent"]);
    expect(t.failures).toEqual([]);
    expect(t.retries).toEqual([]);
    agent.exit();
    await toPromise(t.actor);
    expect(t.calls.slice(0, 2)).toEqual(["runAgent", "agentExited"]);
    expect(t.calls.at(-1)).toBe("cleanup");
    const recorded = next === "recordFailure" ? t.failures.length : next === "recordRetry" ? t.retries.length : t.calls.filter((c) => c === "requeue").length;
    expect(recorded).toBe(1);
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
    expect(t.calls).toEqual(["runAgent", "agentExited", "requeue", "cleanup"]);
    expect(t.failures).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { FINISHED_RUN_SILENCE_TTLS, claimed, decideClaim, silenceLeftMs, takeoverSilenceMs } from "../../src/runs/claim.js";
import { agentFinished, finished, isAgentFinished, newRunRecord, requeued } from "../../src/runs/record.js";
import { route } from "../../src/routing.js";
import type { JobRequest } from "../../src/schemas/job.js";
import type { RunRecord } from "../../src/schemas/run.js";

const job: JobRequest = {
  id: "job-1",
  type: "task",
  repository: "org/repo",
  targetRuntime: "codex",
  maxAttempts: 3,
  task: { instructions: "fix it", runtime: { mode: "codex" } },
};
const queued = newRunRecord(job, route("codex", job.repository, 3), "2025-01-01T00:00:00.000Z");
const runningOn = (workerId: string, attempts = 1): RunRecord => claimed({ ...queued, attempts: attempts - 1 }, workerId, "2025-01-01T00:00:01.000Z");
const finishedOn = (workerId: string, attempts = 1) => agentFinished(runningOn(workerId, attempts), "2025-01-01T00:00:09.000Z");

describe("decideClaim", () => {
  it("takes a queued run, skips a finished one, waits for a live holder", () => {
    expect(decideClaim(queued, "w1", false)).toEqual({ kind: "take" });
    expect(decideClaim(finished(runningOn("w2"), "t", "succeeded", { outcome: "NO_CHANGES" }), "w1", false)).toMatchObject({ kind: "skip" });
    expect(decideClaim(runningOn("w2"), "w1", true)).toEqual({ kind: "busy", holder: "w2" });
    expect(decideClaim(runningOn("w2"), "w1", false)).toEqual({ kind: "take" });
    expect(decideClaim(runningOn("w2", 3), "w1", false)).toEqual({ kind: "exhausted" });
  });

  it("never takes a run whose agent finished on a worker that is gone: its result is lost, not run again", () => {
    expect(decideClaim(finishedOn("w2"), "w1", false)).toEqual({ kind: "lost", holder: "w2", finishedAt: "2025-01-01T00:00:09.000Z" });
    // An earlier life of this very worker: its start-up sweep removed the workspace the result was in.
    expect(decideClaim(finishedOn("w1"), "w1", false)).toMatchObject({ kind: "lost", holder: "w1" });
    // Lost rather than exhausted: the agent did finish.
    expect(decideClaim(finishedOn("w2", 3), "w1", false)).toMatchObject({ kind: "lost" });
    // A live holder is collecting it.
    expect(decideClaim(finishedOn("w2"), "w1", true)).toEqual({ kind: "busy", holder: "w2" });
  });

  it("waits longer for a silent holder of a finished agent than for one still running it", () => {
    expect(takeoverSilenceMs(runningOn("w2"), 1_500)).toBe(1_500);
    expect(takeoverSilenceMs(finishedOn("w2"), 1_500)).toBe(FINISHED_RUN_SILENCE_TTLS * 1_500);
  });
});

describe("the agent-finished fact", () => {
  it("stands only for the attempt whose agent finished", () => {
    const done = finishedOn("w2");
    expect(isAgentFinished(done)).toBe(true);
    expect(isAgentFinished(runningOn("w2"))).toBe(false);
    // A retry or a hand-back runs the agent afresh; so does a new claim.
    const back = requeued(done, "t", "t2", { code: "AGENT_FAILED", message: "exit 1" }, true);
    expect(back.agentFinishedAt).toBeUndefined();
    expect(isAgentFinished(claimed(back, "w1", "t3"))).toBe(false);
    expect(claimed({ ...done, state: "queued" }, "w1", "t3").agentFinishedAt).toBeUndefined();
    // The concluding write keeps its own finishedAt.
    expect(finished(done, "t9", "succeeded", { outcome: "NO_CHANGES" })).toMatchObject({ state: "succeeded", finishedAt: "t9" });
  });
});

describe("silenceLeftMs", () => {
  it("waits the whole silence from the first sighting, then lets the takeover through once", () => {
    const seen = new Map<string, number>();
    expect(silenceLeftMs(seen, "job:w2", 1_500, 10_000)).toBe(1_500);
    expect(silenceLeftMs(seen, "job:w2", 1_500, 11_000)).toBe(500);
    expect(silenceLeftMs(seen, "job:w2", 1_500, 11_500)).toBe(0);
    expect(seen.has("job:w2")).toBe(false);
    // Sightings long past are dropped when a new one comes.
    seen.set("old:w9", 0);
    silenceLeftMs(seen, "job:w3", 1_500, 100_000);
    expect([...seen.keys()]).toEqual(["job:w3"]);
  });
});

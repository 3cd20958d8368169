/** Human lines for job events, and which events end a job's story for `watch <id>` and `submit --wait`. */
import { describe, expect, it } from "vitest";
import { describeJobEvent, isTerminal, jobLine } from "../../src/cli/render.js";
import { JobEventSchema, type JobEvent } from "../../src/schemas/events.js";

const at = "2025-01-02T03:04:05.000Z";
const requeued = (previousState: "failed" | "cancelled" | "dead_letter"): JobEvent =>
  JobEventSchema.parse({ type: "requeued", at, jobId: "job-1", attempt: 2, previousState, by: "ops", subject: "jobs.codex.shard.1" });

describe("requeued", () => {
  it("says who queued the run again, the state it left and the attempt it runs as", () => {
    expect(describeJobEvent(requeued("failed"))).toBe("requeued by ops after it failed: attempt 2 on jobs.codex.shard.1");
    expect(describeJobEvent(requeued("cancelled"))).toBe("requeued by ops after it was cancelled: attempt 2 on jobs.codex.shard.1");
    expect(describeJobEvent(requeued("dead_letter"))).toBe("requeued by ops after it was dead-lettered: attempt 2 on jobs.codex.shard.1");
    expect(jobLine(requeued("failed"))).toBe("03:04:05  job-1  requeued by ops after it failed: attempt 2 on jobs.codex.shard.1");
  });

  it("is not an end: a watcher waiting for the job's end keeps waiting", () => {
    expect(isTerminal(requeued("failed"))).toBe(false);
    const failed = JobEventSchema.parse({ type: "failed", at, jobId: "job-1", attempt: 1, state: "failed", error: { code: "AGENT_FAILED", message: "exit 1" } });
    expect(isTerminal(failed)).toBe(true);
  });

  it("is refused for a state a run cannot be queued again from", () => {
    const r = JobEventSchema.safeParse({ type: "requeued", at, jobId: "job-1", attempt: 2, previousState: "succeeded", by: "ops", subject: "jobs.codex.shard.1" });
    expect(r.success).toBe(false);
  });
});

/** The job machine's types: what its actors return, what it reports, how it settles. */
import type { JobRequest } from "../src/schemas/job.js";
import type { Outcome, PreflightResult, RunError, RunState } from "../src/schemas/run.js";

export type ClaimResult =
  | { kind: "claimed"; attempt: number }
  /** Finished, cancelled or dead already: drop the message. */
  | { kind: "skip"; reason: string }
  /** A live worker holds it: look again later. */
  | { kind: "busy"; retryInMs: number; holder: string }
  /** Every attempt was spent (e.g. workers died mid-run): dead-letter without running. */
  | { kind: "exhausted"; attempt: number }
  /** No run record (deleted, or never written by intake): the job ends, saying why. */
  | { kind: "missing"; reason: string }
  /** The shard message disagrees with the request in the run record: refuse the message. */
  | { kind: "refused"; reason: string }
  /**
   * The run's agent finished on a worker that died before storing its result (the record says so):
   * the agent is not run again, the job ends failed with RESULT_LOST. The claimer owns the record.
   */
  | { kind: "lost"; attempt: number; reason: string };

export interface Workspace {
  dir: string;
  baseCommit: string;
}

export interface AgentResult {
  exitCode: number;
  /** Final message of the agent, when it produced one. */
  lastMessage?: string | undefined;
  /** Why a non-zero exit happened, in the CLI's own words. */
  error?: RunError | undefined;
  /** Set when the adapter recognised an expired or revoked login in the output. */
  authExpired?: boolean | undefined;
  /** Set when the output shows the plan's usage limit: the job goes back unspent, the login waits for the reset. */
  usageLimited?: boolean | undefined;
}

export interface Collected {
  outcome: Outcome;
  artifacts: string[];
  summary?: string | undefined;
  /** A published branch (`task.publish.mode: branch`). */
  published?: { branch: string; commit: string; remote: string; pullRequest?: string | undefined } | undefined;
}

export type Settlement =
  | { kind: "ack" }
  | { kind: "nak"; delayMs: number }
  | { kind: "term" }
  /** Another delivery owns the message now: leave it alone. */
  | { kind: "none" };

/** What the host publishes as `status.jobs.<id>.<type>`; it adds `at` and `jobId`. */
export type JobReport =
  | { type: "claimed"; attempt: number }
  | { type: "preflight"; attempt: number; status: PreflightResult["status"]; message: string }
  | { type: "started"; attempt: number }
  | { type: "succeeded"; attempt: number; outcome: Outcome; summary?: string | undefined; artifacts: string[] }
  | { type: "retrying"; attempt: number; delayMs: number; error: RunError }
  | { type: "failed"; attempt: number; state: RunState; error: RunError }
  | { type: "cancelled"; reason: string };

export interface JobMachineInput {
  job: JobRequest;
  jobTimeoutMs: number;
  /** Retry delay for a given attempt (the host passes a pure backoff with its policy). */
  retryDelay: (attempt: number) => number;
  /** Delay before a job that could not start (preflight failed) is offered again. */
  requeueDelayMs: number;
}

/** Why the agent is being stopped early, and so where the job goes once it is gone. */
export type StopThen = "cancel" | "timeout" | "release";

export interface JobContext extends JobMachineInput {
  attempt: number;
  then?: StopThen | undefined;
  workspace?: Workspace | undefined;
  agent?: AgentResult | undefined;
  collected?: Collected | undefined;
  error?: RunError | undefined;
  retryable: boolean;
  /** What a failure that will not be retried is recorded as. */
  finalState: "failed" | "dead_letter";
  settlement: Settlement;
}

export type JobMachineEvent =
  | { type: "CANCEL"; reason: string }
  /** The worker is stopping: stop the agent and hand the job back at once, no attempt spent. */
  | { type: "RELEASE"; reason: string };

export interface FailureInput {
  job: JobRequest;
  attempt: number;
  error: RunError;
  workspace?: Workspace | undefined;
}

/**
 * One job on one worker, from the claim to the settled message. Pure: every effect is an
 * actor or action the worker provides with `.provide()`; time reaches it only through delays.
 *
 *   claiming → preflight → preparing → running → exited → collecting → finishing → cleaning → done
 *                                 \________ failing → retrying | concluding (failed or dead_letter)
 *   requeueing (preflight failed, no attempt spent) · cancelling (CANCEL)
 *   running ─(timeout | CANCEL | RELEASE)→ stopping: nothing moves on until the agent and every
 *   process it started are gone, and its rotated credentials are written back
 *   exited: nothing is collected until the record says the agent has finished (recordExit), so a
 *   worker dying from here on is never answered by running the agent again; a claim that finds
 *   such a record of a dead worker ends the job (`lost` → concluding, RESULT_LOST)
 *
 * The machine's output tells the host how to settle the JetStream message. The host keeps the
 * message alive from delivery to settlement, so no step here races ack_wait. A record write the
 * host could not make (it retries the store itself) hands the message back; only a
 * compare-and-set conflict — another worker owns the run now — leaves the message alone.
 */
import { assign, fromPromise, setup, type DoneActorEvent } from "xstate";
import type { JobRequest } from "../src/schemas/job.js";
import type { PreflightResult, RunError } from "../src/schemas/run.js";
import type {
  AgentResult,
  ClaimResult,
  Collected,
  FailureInput,
  JobContext,
  JobMachineEvent,
  JobMachineInput,
  JobReport,
  Settlement,
  StopThen,
  Workspace,
} from "./job.types.js";

export type * from "./job.types.js";

const notProvided = (name: string) =>
  fromPromise<never, unknown>(async () => {
    throw new Error(`job machine: actor '${name}' was not provided`);
  });

/** Errors from actors arrive as `unknown`; keep their code and message, nothing else. */
function toRunError(error: unknown, fallbackCode: string): RunError {
  const e = error as { code?: unknown; message?: unknown } | null;
  return {
    code: typeof e?.code === "string" ? e.code : fallbackCode,
    message: typeof e?.message === "string" ? e.message : String(error),
  };
}

function isPermanentError(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === "PermanentError";
}

/** Another worker's write won the run record. Recognised by name or code, so it survives any boundary. */
function isRunConflict(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "RunConflictError" || e?.code === "RUN_CONFLICT";
}

/** The preflight result, as reported from either branch of the preflight state. */
function preflightReport({ context, event }: { context: JobContext; event: unknown }): JobReport {
  const result = (event as DoneActorEvent<PreflightResult>).output;
  return { type: "preflight", attempt: context.attempt, status: result.status, message: result.message };
}

/** Back in the queue (a retry with backoff, or a requeue that spends no attempt): watchers see why. */
function retryingReport({ context }: { context: JobContext }): JobReport {
  const delayMs = context.settlement.kind === "nak" ? context.settlement.delayMs : 0;
  return { type: "retrying", attempt: context.attempt, delayMs, error: context.error! };
}

/** The worker is stopping: the job goes back to the queue at once, its attempt not spent. */
const handBack = {
  target: "#job.requeueing",
  actions: assign<JobContext, Extract<JobMachineEvent, { type: "RELEASE" }>, undefined, JobMachineEvent, never>({
    requeueDelayMs: 0,
    error: ({ event }) => ({ code: "WORKER_STOPPING", message: event.reason }),
  }),
} as const;

/** Cancelled before the agent started: nothing to stop, the run is recorded cancelled. */
const cancelBeforeStart = {
  target: "#job.cancelling",
  actions: assign<JobContext, Extract<JobMachineEvent, { type: "CANCEL" }>, undefined, JobMachineEvent, never>({
    error: ({ event }) => ({ code: "CANCELLED", message: event.reason }),
  }),
} as const;

/**
 * A record write failed after the host's own retries. A conflict: the run is another worker's
 * now, leave its message alone. Anything else: hand the message back for a later delivery.
 */
const WRITE_FAILED = [
  { guard: "runConflict", target: "#job.cleaning", actions: assign<JobContext, any, undefined, JobMachineEvent, never>({ settlement: { kind: "none" } }) },
  {
    target: "#job.cleaning",
    actions: assign<JobContext, any, undefined, JobMachineEvent, never>({
      settlement: ({ context }) => ({ kind: "nak" as const, delayMs: context.requeueDelayMs }),
    }),
  },
] as const;

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    input: {} as JobMachineInput,
    events: {} as JobMachineEvent,
    output: {} as { settlement: Settlement; state: string },
  },
  actors: {
    claim: notProvided("claim") as unknown as ReturnType<typeof fromPromise<ClaimResult, { job: JobRequest }>>,
    preflight: notProvided("preflight") as unknown as ReturnType<
      typeof fromPromise<PreflightResult, { job: JobRequest; attempt: number }>
    >,
    prepareWorkspace: notProvided("prepareWorkspace") as unknown as ReturnType<
      typeof fromPromise<Workspace, { job: JobRequest; attempt: number }>
    >,
    runAgent: notProvided("runAgent") as unknown as ReturnType<
      typeof fromPromise<AgentResult, { job: JobRequest; attempt: number; workspace: Workspace }>
    >,
    /**
     * Writes on the run record that the agent has finished (compare-and-set, retried while the
     * store is away). The host may have begun it already, the moment the agent said so.
     */
    recordExit: notProvided("recordExit") as unknown as ReturnType<typeof fromPromise<void, { job: JobRequest; attempt: number }>>,
    collectArtifacts: notProvided("collectArtifacts") as unknown as ReturnType<
      typeof fromPromise<Collected, { job: JobRequest; workspace: Workspace; agent: AgentResult }>
    >,
    complete: notProvided("complete") as unknown as ReturnType<
      typeof fromPromise<void, { job: JobRequest; attempt: number; collected: Collected }>
    >,
    requeue: notProvided("requeue") as unknown as ReturnType<
      typeof fromPromise<void, { job: JobRequest; attempt: number; delayMs: number; reason: RunError }>
    >,
    recordRetry: notProvided("recordRetry") as unknown as ReturnType<
      typeof fromPromise<void, FailureInput & { delayMs: number }>
    >,
    recordFailure: notProvided("recordFailure") as unknown as ReturnType<
      typeof fromPromise<void, FailureInput & { state: "failed" | "dead_letter" | "cancelled" }>
    >,
    /** Resolves once the stopped agent and every process it started are gone. */
    agentExited: notProvided("agentExited") as unknown as ReturnType<typeof fromPromise<void, void>>,
    cleanup: notProvided("cleanup") as unknown as ReturnType<
      typeof fromPromise<void, { job: JobRequest; workspace?: Workspace | undefined }>
    >,
  },
  actions: {
    /** Publish a status event; the host adds `at`, `jobId` and `workerId`. */
    report: (_, _params: JobReport) => {},
  },
  guards: {
    claimIs: ({ event }, params: { kind: ClaimResult["kind"] }) =>
      (event as unknown as DoneActorEvent<ClaimResult>).output.kind === params.kind,
    preflightPassed: ({ event }) => (event as unknown as DoneActorEvent<PreflightResult>).output.status !== "failed",
    agentSucceeded: ({ event }) => (event as unknown as DoneActorEvent<AgentResult>).output.exitCode === 0,
    /** The login, not the job, is what failed: expired, or at its plan's usage limit. */
    agentLoginBlocked: ({ event }) => {
      const out = (event as unknown as DoneActorEvent<AgentResult>).output;
      return out.authExpired === true || out.usageLimited === true;
    },
    canRetry: ({ context }) => context.retryable && context.attempt < context.job.maxAttempts,
    isRetryable: ({ context }) => context.retryable,
    runConflict: ({ event }) => isRunConflict((event as { error?: unknown }).error),
    storeUnavailable: ({ event }) => (event as { error?: { code?: unknown } }).error?.code === "STORE_UNAVAILABLE",
    stoppedFor: ({ context }, params: { then: StopThen }) => context.then === params.then,
  },
  delays: {
    jobTimeout: ({ context }) => context.jobTimeoutMs,
  },
}).createMachine({
  id: "job",
  context: ({ input }) => ({
    ...input,
    attempt: 0,
    retryable: true,
    finalState: "failed",
    settlement: { kind: "none" },
  }),
  output: ({ context, self }) => ({ settlement: context.settlement, state: String(self.getSnapshot().value) }),
  initial: "claiming",
  states: {
    claiming: {
      invoke: {
        src: "claim",
        input: ({ context }) => ({ job: context.job }),
        onDone: [
          {
            guard: { type: "claimIs", params: { kind: "claimed" } },
            target: "preflight",
            actions: [
              assign({ attempt: ({ event }) => (event.output as Extract<ClaimResult, { kind: "claimed" }>).attempt }),
              { type: "report", params: ({ event }) => ({ type: "claimed", attempt: (event.output as { attempt: number }).attempt }) },
            ],
          },
          {
            guard: { type: "claimIs", params: { kind: "busy" } },
            target: "done",
            actions: assign({
              settlement: ({ event }) => ({
                kind: "nak" as const,
                delayMs: (event.output as Extract<ClaimResult, { kind: "busy" }>).retryInMs,
              }),
            }),
          },
          {
            guard: { type: "claimIs", params: { kind: "missing" } },
            target: "concluding",
            actions: assign({
              finalState: "failed",
              retryable: false,
              error: ({ event }) => ({
                code: "RUN_RECORD_MISSING",
                message: (event.output as Extract<ClaimResult, { kind: "missing" }>).reason,
              }),
            }),
          },
          {
            guard: { type: "claimIs", params: { kind: "lost" } },
            target: "concluding",
            actions: assign({
              finalState: "failed",
              retryable: false,
              attempt: ({ event }) => (event.output as Extract<ClaimResult, { kind: "lost" }>).attempt,
              error: ({ event }) => ({ code: "RESULT_LOST", message: (event.output as Extract<ClaimResult, { kind: "lost" }>).reason }),
            }),
          },
          // A forged or stale body: never run it, never redeliver it; the job's own message is untouched.
          { guard: { type: "claimIs", params: { kind: "refused" } }, target: "done", actions: assign({ settlement: { kind: "term" } }) },
          {
            guard: { type: "claimIs", params: { kind: "exhausted" } },
            target: "concluding",
            actions: assign({
              finalState: "dead_letter",
              attempt: ({ event }) => (event.output as Extract<ClaimResult, { kind: "exhausted" }>).attempt,
              retryable: false,
              error: ({ context }) => ({
                code: "ATTEMPTS_EXHAUSTED",
                message: `all ${context.job.maxAttempts} attempts were spent without a result`,
              }),
            }),
          },
          { target: "done", actions: assign({ settlement: { kind: "ack" } }) },
        ],
        // The run store was unreachable: hand the message back rather than guess.
        onError: {
          target: "done",
          actions: assign({ settlement: ({ context }) => ({ kind: "nak" as const, delayMs: context.requeueDelayMs }) }),
        },
      },
    },
    preflight: {
      on: { RELEASE: handBack, CANCEL: cancelBeforeStart },
      invoke: {
        src: "preflight",
        input: ({ context }) => ({ job: context.job, attempt: context.attempt }),
        onDone: [
          {
            guard: "preflightPassed",
            target: "preparing",
            actions: { type: "report", params: preflightReport },
          },
          {
            target: "requeueing",
            actions: [
              { type: "report", params: preflightReport },
              assign({ error: ({ event }) => ({ code: "PREFLIGHT_FAILED", message: event.output.message }) }),
            ],
          },
        ],
        onError: {
          target: "failing",
          actions: assign({ error: ({ event }) => toRunError(event.error, "PREFLIGHT_ERROR") }),
        },
      },
    },
    preparing: {
      on: { RELEASE: handBack, CANCEL: cancelBeforeStart },
      invoke: {
        src: "prepareWorkspace",
        input: ({ context }) => ({ job: context.job, attempt: context.attempt }),
        onDone: {
          target: "running",
          actions: [
            assign({ workspace: ({ event }) => event.output }),
            { type: "report", params: ({ context }) => ({ type: "started", attempt: context.attempt }) },
          ],
        },
        onError: {
          target: "failing",
          actions: assign({
            error: ({ event }) => toRunError(event.error, "WORKSPACE_FAILED"),
            retryable: ({ event }) => !isPermanentError(event.error),
          }),
        },
      },
    },
    running: {
      invoke: {
        src: "runAgent",
        input: ({ context }) => ({ job: context.job, attempt: context.attempt, workspace: context.workspace! }),
        onDone: [
          { guard: "agentSucceeded", target: "exited", actions: assign({ agent: ({ event }) => event.output }) },
          {
            guard: "agentLoginBlocked",
            target: "requeueing",
            actions: assign({
              agent: ({ event }) => event.output,
              error: ({ event }) => event.output.error ?? { code: "AUTH_EXPIRED", message: "the agent's login has expired" },
            }),
          },
          {
            target: "failing",
            actions: assign({
              agent: ({ event }) => event.output,
              error: ({ event }) =>
                event.output.error ?? { code: "AGENT_FAILED", message: `agent exited with code ${event.output.exitCode}` },
            }),
          },
        ],
        onError: {
          target: "failing",
          actions: assign({
            error: ({ event }) => toRunError(event.error, "AGENT_ERROR"),
            retryable: ({ event }) => !isPermanentError(event.error),
          }),
        },
      },
      after: {
        jobTimeout: {
          target: "stopping",
          actions: assign({
            then: "timeout",
            error: ({ context }) => ({
              code: "TIMEOUT",
              message: `the agent ran longer than ${context.jobTimeoutMs} ms (MOONMIND_JOB_TIMEOUT_MS) and was stopped`,
            }),
          }),
        },
      },
      on: {
        CANCEL: {
          target: "stopping",
          actions: assign({ then: "cancel", error: ({ event }) => ({ code: "CANCELLED", message: event.reason }) }),
        },
        RELEASE: {
          target: "stopping",
          actions: assign({
            then: "release",
            requeueDelayMs: 0,
            error: ({ event }) => ({ code: "WORKER_STOPPING", message: event.reason }),
          }),
        },
      },
    },
    // Leaving `running` stopped the agent (SIGTERM, SIGKILL after the grace): wait until it is gone.
    stopping: {
      invoke: {
        src: "agentExited",
        onDone: [
          { guard: { type: "stoppedFor", params: { then: "cancel" } }, target: "cancelling" },
          { guard: { type: "stoppedFor", params: { then: "release" } }, target: "requeueing" },
          { target: "failing" },
        ],
        onError: [
          { guard: { type: "stoppedFor", params: { then: "cancel" } }, target: "cancelling" },
          { guard: { type: "stoppedFor", params: { then: "release" } }, target: "requeueing" },
          { target: "failing" },
        ],
      },
    },
    // The agent's effect has happened: first of all, the record says so.
    exited: {
      invoke: {
        src: "recordExit",
        input: ({ context }) => ({ job: context.job, attempt: context.attempt }),
        onDone: { target: "collecting" },
        onError: WRITE_FAILED,
      },
    },
    collecting: {
      invoke: {
        src: "collectArtifacts",
        input: ({ context }) => ({ job: context.job, workspace: context.workspace!, agent: context.agent! }),
        onDone: { target: "finishing", actions: assign({ collected: ({ event }) => event.output }) },
        onError: [
          // The host retried the store until its deadline: hand the message back, judge nothing.
          {
            guard: "storeUnavailable",
            target: "cleaning",
            actions: assign({ settlement: ({ context }) => ({ kind: "nak" as const, delayMs: context.requeueDelayMs }) }),
          },
          {
            target: "failing",
            actions: assign({
              error: ({ event }) => toRunError(event.error, "ARTIFACTS_FAILED"),
              retryable: ({ event }) => !isPermanentError(event.error),
            }),
          },
        ],
      },
    },
    finishing: {
      invoke: {
        src: "complete",
        input: ({ context }) => ({ job: context.job, attempt: context.attempt, collected: context.collected! }),
        onDone: {
          target: "cleaning",
          actions: [
            assign({ settlement: { kind: "ack" } }),
            {
              type: "report",
              params: ({ context }) => ({
                type: "succeeded",
                attempt: context.attempt,
                outcome: context.collected!.outcome,
                summary: context.collected!.summary,
                artifacts: context.collected!.artifacts,
              }),
            },
          ],
        },
        onError: WRITE_FAILED,
      },
    },
    failing: {
      always: [
        { guard: "canRetry", target: "retrying" },
        // Retryable but out of attempts: dead-lettered. Permanent: failed.
        { guard: "isRetryable", target: "concluding", actions: assign({ finalState: "dead_letter" }) },
        { target: "concluding", actions: assign({ finalState: "failed" }) },
      ],
    },
    retrying: {
      entry: assign({ settlement: ({ context }) => ({ kind: "nak" as const, delayMs: context.retryDelay(context.attempt) }) }),
      invoke: {
        src: "recordRetry",
        input: ({ context }) => ({
          job: context.job,
          attempt: context.attempt,
          error: context.error!,
          workspace: context.workspace,
          delayMs: (context.settlement as { delayMs: number }).delayMs,
        }),
        onDone: {
          target: "cleaning",
          actions: { type: "report", params: retryingReport },
        },
        onError: WRITE_FAILED,
      },
    },
    requeueing: {
      entry: assign({ settlement: ({ context }) => ({ kind: "nak" as const, delayMs: context.requeueDelayMs }) }),
      invoke: {
        src: "requeue",
        input: ({ context }) => ({
          job: context.job,
          attempt: context.attempt,
          delayMs: context.requeueDelayMs,
          reason: context.error!,
        }),
        onDone: {
          target: "cleaning",
          actions: { type: "report", params: retryingReport },
        },
        onError: WRITE_FAILED,
      },
    },
    concluding: {
      invoke: {
        src: "recordFailure",
        input: ({ context }) => ({
          job: context.job,
          attempt: context.attempt,
          error: context.error!,
          workspace: context.workspace,
          state: context.finalState,
        }),
        onDone: {
          target: "cleaning",
          actions: [
            assign({ settlement: { kind: "term" } }),
            {
              type: "report",
              params: ({ context }) => ({
                type: "failed",
                attempt: context.attempt,
                state: context.finalState,
                error: context.error!,
              }),
            },
          ],
        },
        onError: WRITE_FAILED,
      },
    },
    cancelling: {
      invoke: {
        src: "recordFailure",
        input: ({ context }) => ({
          job: context.job,
          attempt: context.attempt,
          error: context.error!,
          workspace: context.workspace,
          state: "cancelled" as const,
        }),
        onDone: {
          target: "cleaning",
          actions: [
            assign({ settlement: { kind: "term" } }),
            { type: "report", params: ({ context }) => ({ type: "cancelled", reason: context.error!.message }) },
          ],
        },
        onError: WRITE_FAILED,
      },
    },
    cleaning: {
      invoke: {
        src: "cleanup",
        input: ({ context }) => ({ job: context.job, workspace: context.workspace }),
        onDone: { target: "done" },
        // A directory that would not go away must not change how the job is settled.
        onError: { target: "done" },
      },
    },
    done: { type: "final" },
  },
});

/**
 * One job on one worker, from the claim to the settled message. Pure: every effect is an
 * actor or action the worker provides with `.provide()`; time reaches it only through delays.
 *
 *   claiming → preflight → preparing → running → collecting → finishing → cleaning → done
 *                                 \________ failing → retrying | concluding (failed or dead_letter)
 *   requeueing (preflight failed, no attempt spent) · cancelling (CANCEL or timeout)
 *
 * The machine's output tells the host how to settle the JetStream message.
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
    cleanup: notProvided("cleanup") as unknown as ReturnType<
      typeof fromPromise<void, { job: JobRequest; workspace?: Workspace | undefined }>
    >,
  },
  actions: {
    /** Publish a status event; the host adds `at`, `jobId` and `workerId`. */
    report: (_, _params: JobReport) => {},
    /** In-progress ack: keeps the message ours while the agent runs past ack_wait. */
    keepAlive: () => {},
  },
  guards: {
    claimIs: ({ event }, params: { kind: ClaimResult["kind"] }) =>
      (event as unknown as DoneActorEvent<ClaimResult>).output.kind === params.kind,
    preflightPassed: ({ event }) => (event as unknown as DoneActorEvent<PreflightResult>).output.status !== "failed",
    agentSucceeded: ({ event }) => (event as unknown as DoneActorEvent<AgentResult>).output.exitCode === 0,
    agentLoginExpired: ({ event }) => (event as unknown as DoneActorEvent<AgentResult>).output.authExpired === true,
    canRetry: ({ context }) => context.retryable && context.attempt < context.job.maxAttempts,
    isRetryable: ({ context }) => context.retryable,
  },
  delays: {
    keepAlive: ({ context }) => context.keepAliveMs,
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
      on: { RELEASE: handBack },
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
      on: { RELEASE: handBack },
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
          { guard: "agentSucceeded", target: "collecting", actions: assign({ agent: ({ event }) => event.output }) },
          {
            guard: "agentLoginExpired",
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
          target: "failing",
          actions: assign({
            error: ({ context }) => ({
              code: "TIMEOUT",
              message: `the agent ran longer than ${context.jobTimeoutMs} ms (MOONMIND_JOB_TIMEOUT_MS) and was stopped`,
            }),
          }),
        },
      },
      on: {
        CANCEL: { target: "cancelling" },
        RELEASE: handBack,
      },
      initial: "alive",
      states: {
        alive: { after: { keepAlive: { target: "alive", reenter: true, actions: "keepAlive" } } },
      },
    },
    collecting: {
      invoke: {
        src: "collectArtifacts",
        input: ({ context }) => ({ job: context.job, workspace: context.workspace!, agent: context.agent! }),
        onDone: { target: "finishing", actions: assign({ collected: ({ event }) => event.output }) },
        onError: { target: "failing", actions: assign({ error: ({ event }) => toRunError(event.error, "ARTIFACTS_FAILED") }) },
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
        // Lost the run record to another worker (our claim expired): it owns the message now.
        onError: { target: "cleaning", actions: assign({ settlement: { kind: "none" } }) },
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
        onError: { target: "cleaning", actions: assign({ settlement: { kind: "none" } }) },
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
        onError: { target: "cleaning", actions: assign({ settlement: { kind: "none" } }) },
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
        onError: { target: "cleaning", actions: assign({ settlement: { kind: "none" } }) },
      },
    },
    cancelling: {
      entry: assign({ error: ({ event }) => ({ code: "CANCELLED", message: (event as { reason: string }).reason }) }),
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
        onError: { target: "cleaning", actions: assign({ settlement: { kind: "none" } }) },
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

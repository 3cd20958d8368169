/**
 * The documented lifecycle of a worker process. Pure: start-up checks and draining are actors
 * the worker provides; pausing and resuming a login's shards are actions.
 *
 *   booting → checking → serving ⇄ paused → draining → stopped
 *                     \→ failed (strict start-up and a required login missing: exit 78)
 *
 * `serving` pulls the shards of every ready login; a login that stops being ready is paused
 * alone (its jobs wait in the stream). `paused` is the state where no login is ready.
 */
import { assign, fromPromise, setup, type DoneActorEvent } from "xstate";

export interface StartupReport {
  /** Logins (`<runtime>:<volume>`) that are not ready, with the remedy for each. */
  notReady: Array<{ login: string; message: string }>;
  /** Problems that are not about a login (e.g. embedding keys missing). */
  problems: string[];
}

export interface WorkerMachineInput {
  logins: string[];
  strict: boolean;
}

export interface WorkerContext extends WorkerMachineInput {
  paused: string[];
  failure?: string | undefined;
}

export type WorkerEvent =
  | { type: "BOOTED" }
  | { type: "LOGIN_READY"; login: string }
  | { type: "LOGIN_LOST"; login: string; reason: string }
  | { type: "DRAIN"; reason: string }
  | { type: "FAIL"; reason: string };

const report = (event: unknown) => (event as DoneActorEvent<StartupReport>).output;

export const workerMachine = setup({
  types: {
    context: {} as WorkerContext,
    input: {} as WorkerMachineInput,
    events: {} as WorkerEvent,
    output: {} as { failure?: string | undefined },
  },
  actors: {
    startupChecks: fromPromise<StartupReport>(async () => {
      throw new Error("worker machine: actor 'startupChecks' was not provided");
    }),
    drain: fromPromise<void, { reason: string }>(async () => {
      throw new Error("worker machine: actor 'drain' was not provided");
    }),
  },
  actions: {
    pauseLogin: (_, _params: { login: string; reason: string }) => {},
    resumeLogin: (_, _params: { login: string }) => {},
    /** Start pulling the shards of every login that is not paused. */
    startServing: (_, _params: { paused: string[] }) => {},
  },
  guards: {
    strictFailure: ({ context, event }) => {
      const r = report(event);
      return context.strict && (r.notReady.length > 0 || r.problems.length > 0);
    },
    nothingReady: ({ context }) => context.paused.length >= context.logins.length,
    loginServing: ({ context, event }) => !context.paused.includes((event as { login: string }).login),
    loginPaused: ({ context, event }) => context.paused.includes((event as { login: string }).login),
  },
}).createMachine({
  id: "worker",
  context: ({ input }) => ({ ...input, paused: [] }),
  output: ({ context }) => ({ failure: context.failure }),
  initial: "booting",
  states: {
    booting: {
      on: { BOOTED: "checking", FAIL: { target: "failed", actions: assign({ failure: ({ event }) => event.reason }) } },
    },
    checking: {
      invoke: {
        src: "startupChecks",
        onDone: [
          {
            guard: "strictFailure",
            target: "failed",
            actions: assign({
              failure: ({ event }) => [...event.output.notReady.map((n) => n.message), ...event.output.problems].join("\n"),
            }),
          },
          {
            target: "running",
            actions: [
              assign({ paused: ({ event }) => event.output.notReady.map((n) => n.login) }),
              { type: "startServing", params: ({ context }) => ({ paused: context.paused }) },
            ],
          },
        ],
        onError: { target: "failed", actions: assign({ failure: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    // Not a documented state of its own: it settles into serving or paused at once.
    running: {
      always: [{ guard: "nothingReady", target: "paused" }, { target: "serving" }],
    },
    serving: {
      on: {
        LOGIN_LOST: {
          target: "running",
          guard: "loginServing",
          actions: [
            assign({ paused: ({ context, event }) => [...context.paused, event.login] }),
            { type: "pauseLogin", params: ({ event }) => ({ login: event.login, reason: event.reason }) },
          ],
        },
        LOGIN_READY: {
          guard: "loginPaused",
          actions: [
            assign({ paused: ({ context, event }) => context.paused.filter((l) => l !== event.login) }),
            { type: "resumeLogin", params: ({ event }) => ({ login: event.login }) },
          ],
        },
        DRAIN: "draining",
      },
    },
    paused: {
      on: {
        LOGIN_READY: {
          target: "running",
          guard: "loginPaused",
          actions: [
            assign({ paused: ({ context, event }) => context.paused.filter((l) => l !== event.login) }),
            { type: "resumeLogin", params: ({ event }) => ({ login: event.login }) },
          ],
        },
        DRAIN: "draining",
      },
    },
    draining: {
      invoke: {
        src: "drain",
        input: ({ event }) => ({ reason: (event as { reason?: string }).reason ?? "stopped" }),
        onDone: "stopped",
        onError: "stopped",
      },
    },
    stopped: { type: "final" },
    failed: { type: "final" },
  },
});

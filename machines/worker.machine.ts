/**
 * The documented lifecycle of a worker process. Pure: start-up checks and draining are actors
 * the worker provides; pausing and resuming a login's shards are actions.
 *
 *   booting → checking → starting → serving ⇄ paused → draining → stopped
 *                     \→ failed (strict start-up and a required login missing: exit 78)
 *   starting fails (e.g. NATS went away) → draining → failed
 *   DRAIN in any state before draining → draining: a stop during start-up is an orderly stop
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
    /** Heartbeat, online event, control service, pull loops: every step awaited. */
    startServing: fromPromise<void, { paused: string[] }>(async () => {
      throw new Error("worker machine: actor 'startServing' was not provided");
    }),
    drain: fromPromise<void, { reason: string }>(async () => {
      throw new Error("worker machine: actor 'drain' was not provided");
    }),
  },
  actions: {
    pauseLogin: (_, _params: { login: string; reason: string }) => {},
    resumeLogin: (_, _params: { login: string }) => {},
  },
  guards: {
    strictFailure: ({ context, event }) => {
      const r = report(event);
      return context.strict && (r.notReady.length > 0 || r.problems.length > 0);
    },
    nothingReady: ({ context }) => context.paused.length >= context.logins.length,
    loginServing: ({ context, event }) => !context.paused.includes((event as { login: string }).login),
    loginPaused: ({ context, event }) => context.paused.includes((event as { login: string }).login),
    failedToStart: ({ context }) => context.failure !== undefined,
  },
}).createMachine({
  id: "worker",
  context: ({ input }) => ({ ...input, paused: [] }),
  output: ({ context }) => ({ failure: context.failure }),
  initial: "booting",
  states: {
    booting: {
      on: {
        BOOTED: "checking",
        FAIL: { target: "failed", actions: assign({ failure: ({ event }) => event.reason }) },
        DRAIN: "draining",
      },
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
          { target: "starting", actions: assign({ paused: ({ event }) => event.output.notReady.map((n) => n.login) }) },
        ],
        onError: { target: "failed", actions: assign({ failure: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
      on: { DRAIN: "draining" },
    },
    starting: {
      invoke: {
        src: "startServing",
        input: ({ context }) => ({ paused: context.paused }),
        onDone: "running",
        onError: {
          target: "draining",
          actions: assign({ failure: ({ event }) => `could not start serving: ${String((event.error as Error)?.message ?? event.error)}` }),
        },
      },
      on: {
        // Logins keep reporting while the worker starts: keep the list of paused ones true.
        LOGIN_LOST: {
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
        input: ({ context, event }) => ({ reason: (event as { reason?: string }).reason ?? context.failure ?? "stopped" }),
        onDone: [{ guard: "failedToStart", target: "failed" }, { target: "stopped" }],
        onError: [{ guard: "failedToStart", target: "failed" }, { target: "stopped" }],
      },
    },
    stopped: { type: "final" },
    failed: { type: "final" },
  },
});

/**
 * The auth lifecycle of one login (a runtime's volume) on one worker. Pure: the check is an
 * actor the worker provides; time enters only through the named delays.
 *
 *   checking → ready | unauthenticated | unavailable
 *   ready:            re-checked every `ttlMs`, on CHECK, and left at once on LOGIN_EXPIRED
 *   not ready:        re-checked every `recheckMs` and on CHECK
 *
 * `login status` can pass while the tokens are dead, so a job's own "login expired" output is
 * evidence too: after it, a timed re-check that still sees the same credentials (fingerprint)
 * stays unauthenticated; changed credentials, or an operator's CHECK with force, lift it.
 */
import { assign, fromPromise, setup, type DoneActorEvent } from "xstate";
import type { PreflightResult } from "../src/schemas/run.js";

export type AuthMachineState = "ready" | "unauthenticated" | "unavailable";

export interface AuthCheckResult {
  state: AuthMachineState;
  result: PreflightResult;
  fingerprint?: string | undefined;
}

export interface AuthMachineInput {
  ttlMs: number;
  recheckMs: number;
}

export interface AuthContext extends AuthMachineInput {
  last?: AuthCheckResult | undefined;
  /** Credentials a job proved dead; the same fingerprint is not trusted again without force. */
  expiredFingerprint?: string | undefined;
  /** The next check was asked for by an operator: its pass is believed. */
  forced: boolean;
}

export type AuthEvent =
  | { type: "CHECK"; force?: boolean }
  | { type: "LOGIN_EXPIRED"; evidence: string; at: string; remedy: string };

export interface AuthAnnouncement {
  state: AuthMachineState;
  result: PreflightResult;
}

const checkOutput = (event: unknown) => (event as DoneActorEvent<AuthCheckResult>).output;

export const authMachine = setup({
  types: {
    context: {} as AuthContext,
    input: {} as AuthMachineInput,
    events: {} as AuthEvent,
  },
  actors: {
    check: fromPromise<AuthCheckResult>(async () => {
      throw new Error("auth machine: actor 'check' was not provided");
    }),
  },
  actions: {
    /** Publish the result (status.workers.<id>.preflight) and pause or resume the login's shards. */
    announce: (_, _params: AuthAnnouncement) => {},
    recordEvidence: assign(({ context, event }) => {
      const e = event as Extract<AuthEvent, { type: "LOGIN_EXPIRED" }>;
      return {
        forced: false,
        expiredFingerprint: context.last?.fingerprint,
        last: {
          state: "unauthenticated" as const,
          fingerprint: context.last?.fingerprint,
          result: {
            status: "failed" as const,
            checkedAt: e.at,
            ...(context.last?.result.volume ? { volume: context.last.result.volume } : {}),
            message: `a job's output shows the login expired (${e.evidence}): ${e.remedy}`,
          },
        },
      };
    }),
  },
  guards: {
    passedAndTrusted: ({ context, event }) => {
      const out = checkOutput(event);
      if (out.state !== "ready") return false;
      return context.forced || context.expiredFingerprint === undefined || out.fingerprint !== context.expiredFingerprint;
    },
    passedButProvenDead: ({ event }) => checkOutput(event).state === "ready",
    unavailable: ({ event }) => checkOutput(event).state === "unavailable",
  },
  delays: {
    ttl: ({ context }) => context.ttlMs,
    recheck: ({ context }) => context.recheckMs,
  },
}).createMachine({
  id: "auth",
  context: ({ input }) => ({ ...input, forced: false }),
  initial: "checking",
  states: {
    checking: {
      // Evidence that arrives while a check runs must not be lost: that check's pass of the
      // same credentials will not be believed.
      on: { LOGIN_EXPIRED: { actions: "recordEvidence" } },
      invoke: {
        src: "check",
        onDone: [
          {
            guard: "passedAndTrusted",
            target: "ready",
            actions: assign({ last: ({ event }) => event.output, expiredFingerprint: undefined, forced: false }),
          },
          {
            // `login status` passes, but a job already proved these very credentials dead.
            guard: "passedButProvenDead",
            target: "unauthenticated",
            actions: assign({
              forced: false,
              last: ({ context, event }) => ({
                ...event.output,
                state: "unauthenticated" as const,
                result: {
                  ...event.output.result,
                  status: "failed" as const,
                  message: context.last?.result.message ?? event.output.result.message,
                  checkedAt: event.output.result.checkedAt,
                },
              }),
            }),
          },
          { guard: "unavailable", target: "unavailable", actions: assign({ last: ({ event }) => event.output, forced: false }) },
          { target: "unauthenticated", actions: assign({ last: ({ event }) => event.output, forced: false }) },
        ],
        // The host's check never throws; if it does, the CLI is as good as unavailable.
        onError: { target: "unavailable", actions: assign({ forced: false }) },
      },
    },
    ready: {
      entry: { type: "announce", params: ({ context }) => ({ state: "ready" as const, result: context.last!.result }) },
      after: { ttl: "checking" },
      on: {
        CHECK: { target: "checking", actions: assign({ forced: ({ event }) => event.force === true }) },
        LOGIN_EXPIRED: { target: "unauthenticated", actions: "recordEvidence" },
      },
    },
    unauthenticated: {
      entry: {
        type: "announce",
        params: ({ context }) => ({ state: "unauthenticated" as const, result: context.last!.result }),
      },
      after: { recheck: "checking" },
      on: { CHECK: { target: "checking", actions: assign({ forced: ({ event }) => event.force === true }) } },
    },
    unavailable: {
      entry: {
        type: "announce",
        params: ({ context }) => ({
          state: "unavailable" as const,
          result: context.last?.result ?? { status: "failed" as const, checkedAt: "", message: "the login check could not run" },
        }),
      },
      after: { recheck: "checking" },
      on: { CHECK: { target: "checking", actions: assign({ forced: ({ event }) => event.force === true }) } },
    },
  },
});

/**
 * The auth lifecycle of one login (a runtime's volume) on one worker. Pure: the check is an
 * actor the worker provides; time enters only through the named delays.
 *
 *   checking → ready | unauthenticated | unavailable;  ready | checking → limited
 *   ready:            re-checked every `ttlMs`, on CHECK, and left at once on LOGIN_EXPIRED
 *   not ready:        re-checked every `recheckMs` and on CHECK
 *   limited:          a job met the plan's usage limit (USAGE_LIMITED): the login is sound but
 *                     spent; re-checked when the limit resets (the host computes how long), or on CHECK
 *
 * `login status` can pass while the tokens are dead, so a job's own "login expired" output is
 * evidence too: after it, a timed re-check that still sees the same credentials (fingerprint)
 * stays unauthenticated; changed credentials, or an operator's CHECK with force, lift it.
 */
import { assign, fromPromise, setup, type DoneActorEvent } from "xstate";
import type { PreflightResult } from "../src/schemas/run.js";

/** What a login check can find; `limited` comes only from a job's answer. */
export type AuthCheckState = "ready" | "unauthenticated" | "unavailable";
export type AuthMachineState = AuthCheckState | "limited";

export interface AuthCheckResult {
  state: AuthCheckState;
  result: PreflightResult;
  fingerprint?: string | undefined;
}

export interface AuthMachineInput {
  ttlMs: number;
  recheckMs: number;
}

export interface AuthContext extends AuthMachineInput {
  last?: (Omit<AuthCheckResult, "state"> & { state: AuthMachineState }) | undefined;
  /** Credentials a job proved dead; the same fingerprint is not trusted again without force. */
  expiredFingerprint?: string | undefined;
  /** The next check was asked for by an operator: its pass is believed. */
  forced: boolean;
  /** While limited: how long until the limit resets (ms, from the USAGE_LIMITED that set it). */
  limitMs?: number | undefined;
}

export type AuthEvent =
  | { type: "CHECK"; force?: boolean }
  | { type: "LOGIN_EXPIRED"; evidence: string; at: string; remedy: string }
  /**
   * A job's output shows the plan's usage limit: `until` is when it resets (ISO), `retryInMs` how
   * long that is from now, both from the host (the CLI's reset time, or a bounded backoff).
   */
  | { type: "USAGE_LIMITED"; evidence: string; at: string; until: string; retryInMs: number };

export interface AuthAnnouncement {
  state: AuthMachineState;
  result: PreflightResult;
}

/** The login as a job's own answer left it: failed, with its message, on the same credentials and volume. */
function judgedByJob(context: AuthContext, state: "unauthenticated" | "limited", at: string, message: string): NonNullable<AuthContext["last"]> {
  return {
    state,
    fingerprint: context.last?.fingerprint,
    result: { status: "failed", checkedAt: at, ...(context.last?.result.volume ? { volume: context.last.result.volume } : {}), message },
  };
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
        last: judgedByJob(context, "unauthenticated", e.at, `a job's output shows the login expired (${e.evidence}): ${e.remedy}`),
      };
    }),
    recordLimit: assign(({ context, event }) => {
      const e = event as Extract<AuthEvent, { type: "USAGE_LIMITED" }>;
      const volume = context.last?.result.volume;
      const message =
        `usage limit until ${e.until}${volume ? ` for volume ${volume}` : ""} (${e.evidence}): ` +
        "its jobs wait in the stream, no attempt spent, and the login resumes by itself then";
      return { forced: false, limitMs: e.retryInMs, last: judgedByJob(context, "limited", e.at, message) };
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
    limitReset: ({ context }) => context.limitMs ?? context.recheckMs,
  },
}).createMachine({
  id: "auth",
  context: ({ input }) => ({ ...input, forced: false }),
  initial: "checking",
  states: {
    checking: {
      // Evidence that arrives while a check runs must not be lost: that check's pass of the
      // same credentials will not be believed.
      on: {
        LOGIN_EXPIRED: { actions: "recordEvidence" },
        // The check cannot see a usage limit (login status passes): the job's answer decides.
        USAGE_LIMITED: { target: "limited", actions: "recordLimit" },
      },
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
        USAGE_LIMITED: { target: "limited", actions: "recordLimit" },
      },
    },
    limited: {
      entry: { type: "announce", params: ({ context }) => ({ state: "limited" as const, result: context.last!.result }) },
      after: { limitReset: { target: "checking", actions: assign({ limitMs: undefined }) } },
      on: {
        CHECK: { target: "checking", actions: assign({ forced: ({ event }) => event.force === true, limitMs: undefined }) },
        LOGIN_EXPIRED: { target: "unauthenticated", actions: "recordEvidence" },
        // A later reset time (another job's answer) moves the wake-up.
        USAGE_LIMITED: { target: "limited", reenter: true, actions: "recordLimit" },
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

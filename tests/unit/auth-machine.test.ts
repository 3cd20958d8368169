import { describe, expect, it } from "vitest";
import { createActor, fromPromise, SimulatedClock, waitFor } from "xstate";
import { authMachine, type AuthAnnouncement, type AuthCheckResult } from "../../machines/auth.machine.js";

const passed = (fingerprint = "fp-1"): AuthCheckResult => ({
  state: "ready",
  fingerprint,
  result: { status: "passed", message: "codex login status passed", checkedAt: "t", volume: "v" },
});
const failed = (state: "unauthenticated" | "unavailable" = "unauthenticated"): AuthCheckResult => ({
  state,
  result: { status: "failed", message: "run tools/auth-codex-volume.sh", checkedAt: "t", volume: "v" },
});

function start(answers: AuthCheckResult[]) {
  const clock = new SimulatedClock();
  const announced: AuthAnnouncement[] = [];
  let checks = 0;
  const queue = [...answers];
  const actor = createActor(
    authMachine.provide({
      actors: {
        check: fromPromise(async () => {
          checks++;
          return queue.length > 1 ? queue.shift()! : queue[0]!;
        }),
      },
      actions: { announce: (_, params) => void announced.push(params) },
    }),
    { clock, input: { ttlMs: 60_000, recheckMs: 10_000 } },
  );
  actor.start();
  return { actor, clock, announced, checks: () => checks };
}

describe("auth machine", () => {
  it("checks at start and is ready on a pass, announcing it", async () => {
    const t = start([passed()]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    expect(t.announced).toEqual([{ state: "ready", result: passed().result }]);
  });

  it.each([
    ["unauthenticated", failed("unauthenticated")],
    ["unavailable", failed("unavailable")],
  ] as const)("goes %s on such a result", async (state, answer) => {
    const t = start([answer]);
    await waitFor(t.actor, (s) => s.matches(state));
    expect(t.announced.at(-1)?.state).toBe(state);
  });

  it("re-checks a ready login when its TTL runs out, not before", async () => {
    const t = start([passed()]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.clock.increment(59_999);
    expect(t.checks()).toBe(1);
    t.clock.increment(1);
    await waitFor(t.actor, (s) => s.matches("ready") && t.checks() === 2);
  });

  it("re-checks a login that is not ready on its own period and recovers", async () => {
    const t = start([failed(), passed()]);
    await waitFor(t.actor, (s) => s.matches("unauthenticated"));
    t.clock.increment(10_000);
    await waitFor(t.actor, (s) => s.matches("ready"));
    expect(t.announced.map((a) => a.state)).toEqual(["unauthenticated", "ready"]);
  });

  it("re-checks at once on request", async () => {
    const t = start([failed("unavailable"), passed()]);
    await waitFor(t.actor, (s) => s.matches("unavailable"));
    t.actor.send({ type: "CHECK" });
    await waitFor(t.actor, (s) => s.matches("ready"));
  });

  it("believes a job's expired login over a passing status until the credentials change", async () => {
    const t = start([passed("fp-1"), passed("fp-1"), passed("fp-2")]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.actor.send({ type: "LOGIN_EXPIRED", evidence: "refresh token was already used", at: "t2", remedy: "run tools/auth-codex-volume.sh" });
    expect(t.actor.getSnapshot().value).toBe("unauthenticated");
    expect(t.announced.at(-1)?.result.message).toMatch(/refresh token was already used.*auth-codex-volume/);
    // Same credentials: `login status` passes but is not believed.
    t.clock.increment(10_000);
    await waitFor(t.actor, (s) => s.matches("unauthenticated") && t.checks() === 2);
    // New credentials on the volume: ready again.
    t.clock.increment(10_000);
    await waitFor(t.actor, (s) => s.matches("ready"));
  });

  it("lets an operator's forced check lift the evidence", async () => {
    const t = start([passed("fp-1")]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.actor.send({ type: "LOGIN_EXPIRED", evidence: "401", at: "t", remedy: "log in" });
    t.actor.send({ type: "CHECK" });
    await waitFor(t.actor, (s) => s.matches("unauthenticated") && t.checks() === 2);
    t.actor.send({ type: "CHECK", force: true });
    await waitFor(t.actor, (s) => s.matches("ready"));
  });

  it("ignores LOGIN_EXPIRED while not ready", async () => {
    const t = start([failed()]);
    await waitFor(t.actor, (s) => s.matches("unauthenticated"));
    t.actor.send({ type: "LOGIN_EXPIRED", evidence: "x", at: "t", remedy: "r" });
    expect(t.actor.getSnapshot().value).toBe("unauthenticated");
    expect(t.announced).toHaveLength(1);
  });
});

describe("auth machine: evidence during a check", () => {
  it("does not lose a job's expired login that arrives while a re-check runs", async () => {
    let release!: (r: AuthCheckResult) => void;
    let calls = 0;
    const announced: AuthAnnouncement[] = [];
    const clock = new SimulatedClock();
    const actor = createActor(
      authMachine.provide({
        actors: {
          check: fromPromise(() => {
            calls++;
            if (calls === 1) return Promise.resolve(passed("fp-1"));
            return new Promise<AuthCheckResult>((r) => (release = r));
          }),
        },
        actions: { announce: (_, p) => void announced.push(p) },
      }),
      { clock, input: { ttlMs: 1_000, recheckMs: 1_000 } },
    );
    actor.start();
    await waitFor(actor, (s) => s.matches("ready"));
    clock.increment(1_000);
    await waitFor(actor, (s) => s.matches("checking") && calls === 2);
    actor.send({ type: "LOGIN_EXPIRED", evidence: "invalid_grant", at: "t", remedy: "log in" });
    release(passed("fp-1"));
    await waitFor(actor, (s) => s.matches("unauthenticated"));
    expect(announced.at(-1)?.result.message).toMatch(/invalid_grant/);
  });
});

describe("auth machine: a plan's usage limit", () => {
  const limited = (retryInMs: number, until = "2026-12-03T16:00:00.000Z") =>
    ({ type: "USAGE_LIMITED", evidence: "You've hit your usage limit", at: "t", until, retryInMs }) as const;

  it("goes limited on a job's usage-limit answer, announcing the reset time, and re-checks exactly when it resets", async () => {
    const t = start([passed()]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.actor.send(limited(30_000));
    expect(t.actor.getSnapshot().value).toBe("limited");
    expect(t.announced.at(-1)).toMatchObject({ state: "limited", result: { status: "failed", volume: "v" } });
    expect(t.announced.at(-1)!.result.message).toMatch(/usage limit until 2026-12-03T16:00:00.000Z for volume v .*resumes by itself/);
    // Its TTL (60 s) and recheck period (10 s) do not apply: only the reset does.
    t.clock.increment(29_999);
    expect(t.checks()).toBe(1);
    t.clock.increment(1);
    await waitFor(t.actor, (s) => s.matches("ready") && t.checks() === 2);
    expect(t.announced.map((a) => a.state)).toEqual(["ready", "limited", "ready"]);
  });

  it("moves the wake-up to a later reset, and an operator's check ends it early", async () => {
    const t = start([passed()]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.actor.send(limited(5_000));
    t.clock.increment(4_000);
    t.actor.send(limited(20_000, "later"));
    t.clock.increment(19_999);
    expect(t.checks()).toBe(1);
    t.actor.send({ type: "CHECK" });
    await waitFor(t.actor, (s) => s.matches("ready") && t.checks() === 2);
  });

  it("lets an expired login win over a limit, and a limit does not hide a missing login", async () => {
    const t = start([passed(), failed()]);
    await waitFor(t.actor, (s) => s.matches("ready"));
    t.actor.send(limited(5_000));
    t.actor.send({ type: "LOGIN_EXPIRED", evidence: "refresh token was already used", at: "t", remedy: "log in" });
    expect(t.actor.getSnapshot().value).toBe("unauthenticated");
    t.actor.send(limited(5_000));
    expect(t.actor.getSnapshot().value).toBe("unauthenticated");
  });
});

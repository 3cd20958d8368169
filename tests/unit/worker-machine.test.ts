import { describe, expect, it } from "vitest";
import { createActor, fromPromise, toPromise, waitFor } from "xstate";
import { workerMachine, type StartupReport } from "../../machines/worker.machine.js";

function start(report: StartupReport, strict: boolean, logins = ["codex:v1", "claude:v2"], serving?: () => Promise<void>) {
  const calls: string[] = [];
  const actor = createActor(
    workerMachine.provide({
      actors: {
        startupChecks: fromPromise(async () => report),
        startServing: fromPromise(async ({ input }) => {
          calls.push(`serve:${input.paused.join(",")}`);
          if (serving) await serving();
        }),
        drain: fromPromise(async ({ input }) => void calls.push(`drain:${input.reason}`)),
      },
      actions: {
        pauseLogin: (_, p) => void calls.push(`pause:${p.login}`),
        resumeLogin: (_, p) => void calls.push(`resume:${p.login}`),
      },
    }),
    { input: { logins, strict } },
  );
  actor.start();
  actor.send({ type: "BOOTED" });
  return { actor, calls };
}

const allReady: StartupReport = { notReady: [], problems: [] };
const codexMissing: StartupReport = { notReady: [{ login: "codex:v1", message: "run tools/auth-codex-volume.sh" }], problems: [] };

describe("worker machine", () => {
  it("boots, checks and serves when every login is ready", async () => {
    const t = start(allReady, true);
    await waitFor(t.actor, (s) => s.matches("serving"));
    expect(t.calls).toEqual(["serve:"]);
  });

  it("fails strict start-up with every remedy when a login is missing", async () => {
    const t = start({ ...codexMissing, problems: ["DEFAULT_EMBEDDING_PROVIDER=google needs GOOGLE_API_KEY"] }, true);
    const out = await toPromise(t.actor);
    expect(t.actor.getSnapshot().value).toBe("failed");
    expect(out.failure).toContain("run tools/auth-codex-volume.sh");
    expect(out.failure).toContain("GOOGLE_API_KEY");
  });

  it("starts with that login paused when start-up is not strict", async () => {
    const t = start(codexMissing, false);
    await waitFor(t.actor, (s) => s.matches("serving"));
    expect(t.actor.getSnapshot().context.paused).toEqual(["codex:v1"]);
    expect(t.calls).toEqual(["serve:codex:v1"]);
  });

  it("is paused when no login is ready, and serves again when one is", async () => {
    const t = start({ notReady: [{ login: "codex:v1", message: "m" }], problems: [] }, false, ["codex:v1"]);
    await waitFor(t.actor, (s) => s.matches("paused"));
    t.actor.send({ type: "LOGIN_READY", login: "codex:v1" });
    expect(t.actor.getSnapshot().value).toBe("serving");
    expect(t.calls).toEqual(["serve:codex:v1", "resume:codex:v1"]);
  });

  it("pauses one login at a time, and only once", async () => {
    const t = start(allReady, true);
    await waitFor(t.actor, (s) => s.matches("serving"));
    t.actor.send({ type: "LOGIN_LOST", login: "codex:v1", reason: "expired" });
    t.actor.send({ type: "LOGIN_LOST", login: "codex:v1", reason: "expired" });
    expect(t.actor.getSnapshot().value).toBe("serving");
    t.actor.send({ type: "LOGIN_LOST", login: "claude:v2", reason: "expired" });
    expect(t.actor.getSnapshot().value).toBe("paused");
    t.actor.send({ type: "LOGIN_READY", login: "claude:v2" });
    expect(t.actor.getSnapshot().value).toBe("serving");
    expect(t.calls).toEqual(["serve:", "pause:codex:v1", "pause:claude:v2", "resume:claude:v2"]);
  });

  it("drains and stops from serving or paused", async () => {
    const t = start(codexMissing, false, ["codex:v1"]);
    await waitFor(t.actor, (s) => s.matches("paused"));
    t.actor.send({ type: "DRAIN", reason: "SIGTERM" });
    await toPromise(t.actor);
    expect(t.actor.getSnapshot().value).toBe("stopped");
    expect(t.calls.at(-1)).toBe("drain:SIGTERM");
  });

  it("waits for serving to start, and drains to failed when it cannot (a rejection never goes unhandled)", async () => {
    const t = start(allReady, true, ["codex:v1"], async () => {
      throw new Error("connection closed");
    });
    const out = await toPromise(t.actor);
    expect(t.actor.getSnapshot().value).toBe("failed");
    expect(out.failure).toBe("could not start serving: connection closed");
    expect(t.calls).toEqual(["serve:", "drain:could not start serving: connection closed"]);
  });

  it("stops in order when told to during start-up", async () => {
    let release!: () => void;
    const t = start(allReady, true, ["codex:v1"], () => new Promise<void>((r) => (release = r)));
    await waitFor(t.actor, (s) => s.matches("starting"));
    t.actor.send({ type: "DRAIN", reason: "SIGTERM" });
    release();
    await toPromise(t.actor);
    expect(t.actor.getSnapshot().value).toBe("stopped");
    expect(t.calls).toEqual(["serve:", "drain:SIGTERM"]);
  });

  it("keeps track of logins lost while it starts", async () => {
    let release!: () => void;
    const t = start(allReady, true, ["codex:v1"], () => new Promise<void>((r) => (release = r)));
    await waitFor(t.actor, (s) => s.matches("starting"));
    t.actor.send({ type: "LOGIN_LOST", login: "codex:v1", reason: "expired" });
    release();
    await waitFor(t.actor, (s) => s.matches("paused"));
    expect(t.calls).toEqual(["serve:", "pause:codex:v1"]);
  });

  it("ignores a login coming back that was never paused", async () => {
    const t = start(allReady, true);
    await waitFor(t.actor, (s) => s.matches("serving"));
    t.actor.send({ type: "LOGIN_READY", login: "codex:v1" });
    expect(t.calls).toEqual(["serve:"]);
  });
});

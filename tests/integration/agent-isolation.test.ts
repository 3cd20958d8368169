/**
 * What an agent can reach from inside a worker's run: with the sandbox, neither the worker's
 * environment nor the login volume nor other runs' workspaces; without it (the control), all of them.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import { spawnActor } from "../../src/cli/commands/actor.js";
import { probeSandbox } from "../../src/runtimes/sandbox.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

let stack: TestStack;
let intake: Intake;
let events: EventLog;
const sandboxWorks = (await probeSandbox()).ok;

beforeAll(async () => {
  stack = await startStack();
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
});

afterAll(() => stopAll(events, intake, stack));

/** A worker process holding a secret in its environment, as a real one holds NATS credentials. */
async function snoop(id: string, sandbox: "auto" | "none"): Promise<string> {
  const workerId = `w-snoop-${sandbox}`;
  const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === workerId && e.type === "online", 30_000);
  const worker = spawnActor(
    "worker",
    { ...process.env, ...stack.env, MOONMIND_WORKER_ID: workerId, MOONMIND_AGENT_SANDBOX: sandbox, MOONMIND_TEST_SECRET: "the-workers-own" },
    { stdio: "pipe" },
  );
  worker.stdout?.resume();
  worker.stderr?.resume();
  const exited = new Promise((r) => worker.once("exit", r));
  try {
    await online;
    // Another run's workspace, with its login copy, beside this one.
    const other = join(stack.config().workdir, "other-run-a1b2c3");
    await mkdir(join(other, "home"), { recursive: true });
    await writeFile(join(other, "home", "auth.json"), "{}");
    const instructions = `snoop ${stack.env.CODEX_VOLUME_PATH} ${other} ${join(other, "home", "auth.json")} ${join(stack.config().workdir, ".worker")}`;
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: stack.repo, instructions }));
    const done = await events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 30_000);
    expect(done.type).toBe("succeeded");
    return (done as { summary?: string }).summary ?? "";
  } finally {
    worker.kill("SIGTERM");
    await exited;
  }
}

describe("an agent in a worker's run", () => {
  it.skipIf(!sandboxWorks)("reaches nothing of the worker's in the sandbox: no environment, no login volume, no other run", async () => {
    const seen = await snoop("snoop-sandboxed", "auto");
    expect(seen, seen).toBe("snooped: nothing");
  });

  it("reaches all of it without the sandbox, as the worker's own user (the control: the probe can see)", async () => {
    const seen = await snoop("snoop-bare", "none");
    expect(seen).toMatch(/environ:\d+/);
    expect(seen).toContain(`list:${stack.env.CODEX_VOLUME_PATH}`);
    expect(seen).toContain("list:");
    expect(seen).toMatch(/other-run-a1b2c3/);
  });
});

/**
 * What a user deploys is compiled: `npm run build` writes dist/, `moonmind` runs it when it is
 * newer than the sources (and says so when it falls back to them), and `moonmind worker` from
 * the build is one process serving jobs.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../src/paths.js";
import type { Intake } from "../../actors/intake/intake.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents } from "../helpers/events.js";
import { startIntake, startStack, stopAll, type TestStack } from "../helpers/stack.js";
import { waitForWorkerEvent } from "../helpers/worker-events.js";

const run = promisify(execFile);
const BIN = join(PROJECT_ROOT, "src/cli/bin.mjs");
const STAMP = join(PROJECT_ROOT, "dist/BUILT");
const env = { ...process.env, MOONMIND_FROM_SOURCE: "", NO_COLOR: "1" };
let stack: TestStack;
let intake: Intake;

beforeAll(async () => {
  await run("npm", ["run", "-s", "build"], { cwd: PROJECT_ROOT, env });
  stack = await startStack();
  intake = await startIntake(stack);
}, 180_000);

afterAll(async () => {
  await stopAll(intake);
  await stack?.stop();
});

/** Direct children of a process, from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
  );
}

describe("the compiled build", () => {
  it("is what `moonmind` runs once built", async () => {
    expect(existsSync(join(PROJECT_ROOT, "dist/src/cli/index.js"))).toBe(true);
    expect(existsSync(join(PROJECT_ROOT, "dist/actors/worker/main.js"))).toBe(true);
    const { stdout, stderr } = await run(process.execPath, [BIN, "--version"], { env });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(stderr).toBe("");
    const route = await run(process.execPath, [BIN, "route", "org/repo", "--json"], { env });
    expect(JSON.parse(route.stdout)).toMatchObject({ subject: expect.stringMatching(/^jobs\.codex\.shard\.\d+$/) });
  });

  it("gives way to the sources when they are newer", async () => {
    const built = new Date(readFileSync(STAMP, "utf8").trim());
    utimesSync(STAMP, new Date(0), new Date(0));
    try {
      const { stdout } = await run(process.execPath, [BIN, "--version"], { env });
      expect(stdout.trim()).toMatch(/\(from source\)$/);
    } finally {
      utimesSync(STAMP, built, new Date());
    }
  });

  it("runs `moonmind worker` as one process that serves jobs", async () => {
    const id = "w-compiled";
    const online = waitForWorkerEvent(stack.nc, (e) => e.workerId === id && e.type === "online", 30_000);
    const child = spawn(process.execPath, [BIN, "worker"], {
      env: { ...env, ...stack.env, MOONMIND_WORKER_ID: id, MOONMIND_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    for (const s of [child.stdout!, child.stderr!]) s.on("data", (d: Buffer) => (output += d.toString()));
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await online;
      expect(output).toMatch(/"build":"compiled"/);
      // The login check's CLI has ended; the actor, its broker and its timers live in this one process.
      expect(childrenOf(child.pid!)).toEqual([]);
      const events = recordJobEvents(stack.nc, "compiled-1");
      await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "compiled-1", repository: stack.repo, instructions: "write COMPILED.md: yes" }));
      const end = await events.waitFor((e) => e.type === "succeeded" || e.type === "failed", 30_000);
      events.close();
      expect(end.type).toBe("succeeded");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exit).toBe(0);
  }, 60_000);
});

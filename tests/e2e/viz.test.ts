/**
 * The live view, as an operator sees it: `moonmind dev --stand-in` serves it; jobs submitted with
 * the CLI (one succeeds, one fails, one waits for a claude login, one runs long) show on the page
 * in headless Chromium with the same states as ops' run records, the machine diagrams mark what
 * is selected, the broken login names its remedy, and Cancel on the page cancels the long job —
 * with nothing fetched from off the machine and no error on the page.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobMachine } from "../../machines/job.machine.js";
import { chromiumPath, openBrowser, saveScreenshot, type OpenBrowser } from "../helpers/browser.js";
import { makeRepo } from "../helpers/stack.js";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
const WAIT = { timeout: 30_000, interval: 200 };
let dir: string;
let repo: string;
let env: NodeJS.ProcessEnv;
let dev: { child: ChildProcess; exit: Promise<number | null>; stderr: () => string };
let url: string;
let browser: OpenBrowser | undefined;

interface RunEvent {
  event: { type: string; states?: string[] };
}
interface Run {
  record: { state: string };
  events: RunEvent[];
}

const moonmind = (...args: string[]) =>
  execa(process.execPath, [BIN, ...args], { env: { ...env, MOONMIND_DATA_DIR: join(dir, "var", "stand-in") }, reject: false, timeout: 60_000, stdin: "ignore" });
const submit = (id: string, instructions: string, ...more: string[]) =>
  moonmind("submit", "--repository", repo, "--instructions", instructions, "--id", id, ...more);
/** ops' run record and history, through the live view's API; `states` adds the machine's frames. */
async function run(id: string, states = false): Promise<Run> {
  const res = await fetch(new URL(`api/runs/${encodeURIComponent(id)}${states ? "?states=true" : ""}`, url));
  expect(res.status).toBe(200);
  return (await res.json()) as Run;
}
/** The page's rendering of a machine's states: leaves under the machine id, joined. */
const leaf = (states: string[]) => states.map((s) => s.split(".").slice(1).join(".")).join(" + ");

/** Every process started for this test's data dir (actors and their server). */
function stackProcesses(): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (readFileSync(`/proc/${name}/environ`, "utf8").includes(dir) || cmd.includes(dir)) found.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

describe.skipIf(!chromiumPath())("the live view", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "moonmind-viz-"));
    repo = await makeRepo(join(dir, "repo"));
    env = { ...process.env, MOONMIND_DATA_DIR: join(dir, "var"), MOONMIND_LOG_LEVEL: "warn", MOONMIND_VIZ_PORT: "0", MOONMIND_RETRY_BACKOFF_MS: "100" };
    for (const k of ["NATS_URL", "CODEX_VOLUME_PATH", "CLAUDE_VOLUME_PATH", "GEMINI_HOME"]) delete env[k];
    // Its own process group, as a shell starts a foreground job; up once the banner is printed.
    const child = spawn(process.execPath, [BIN, "dev", "--stand-in"], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    let out = "";
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    dev = { child, exit, stderr: () => err };
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dev did not come up: ${out}${err}`)), 45_000);
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (!out.includes("Ctrl-C stops everything")) return;
        clearTimeout(timer);
        const m = /^ {2}live view: +(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
        if (m) resolve(m[1]!);
        else reject(new Error(`no live view in the banner: ${out}${err}`));
      });
      child.once("exit", (code) => reject(new Error(`dev exited with ${code}: ${out}${err}`)));
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (dev?.child.exitCode === null) {
      process.kill(-dev.child.pid!, "SIGINT");
      await dev.exit;
    }
    if (!dir) return;
    for (const pid of stackProcesses()) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("shows every job as ops records it, the machines, the broken login and a job's patch", async () => {
    expect((await submit("viz-ok", "write NOTES.md: hello", "--wait")).exitCode).toBe(0);
    expect((await submit("viz-fail", "fail", "--max-attempts", "1", "--wait")).exitCode).toBe(1);
    expect((await submit("viz-claude", "say hi", "--runtime", "claude")).exitCode).toBe(0);
    expect((await submit("viz-long", "sleep 120000")).exitCode).toBe(0);

    browser = await openBrowser();
    const { page } = browser;
    await page.setViewportSize({ width: 1500, height: 1000 });
    await page.goto(url);
    for (const machine of ["worker", "auth", "job"]) {
      expect(await page.locator(`svg.machine[data-machine=${machine}] g.state`).count()).toBeGreaterThan(3);
    }
    await expect.poll(() => page.textContent("#conn"), WAIT).toBe("live");

    // Every row's state is the run record's, once the long job runs and the claude one waits.
    const ids = ["viz-ok", "viz-fail", "viz-claude", "viz-long"];
    await expect.poll(async () => (await run("viz-long")).record.state, WAIT).toBe("running");
    await expect.poll(() => page.locator("#jobs tbody tr[data-job]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-job")).sort()), WAIT).toEqual([...ids].sort());
    const mismatches = async () => {
      const shown = await page.locator("#jobs tbody tr[data-job]").evaluateAll((rows) =>
        rows.map((r) => [r.getAttribute("data-job")!, r.querySelector("td[data-field=state]")!.textContent!] as const),
      );
      const recorded = await Promise.all(shown.map(async ([id]) => (await run(id)).record.state));
      return shown.filter(([, state], i) => state !== recorded[i]).map(([id, state], i) => `${id}: page ${state}, record ${recorded[i]}`);
    };
    await expect.poll(mismatches, WAIT).toEqual([]);
    expect(await page.textContent("#jobs tr[data-job=viz-ok] td[data-field=state]")).toBe("succeeded");

    // The succeeded job's machine cell is its last transition, into a final state.
    const okStates = (await run("viz-ok", true)).events.map((e) => e.event).filter((e) => e.type === "state").at(-1)!.states!;
    for (const id of okStates) expect(jobMachine.getStateNodeById(id).type).toBe("final");
    await expect.poll(() => page.textContent("#jobs tr[data-job=viz-ok] td[data-field=machine]"), WAIT).toBe(leaf(okStates));

    // The claude worker has no login: the page says how to give it one.
    await expect.poll(() => page.locator('#problems .remedy[data-login^="claude:"] .message').first().textContent(), WAIT).toContain("tools/auth-claude-volume.sh");
    expect(await page.locator('#problems .remedy[data-login^="claude:"]').first().isVisible()).toBe(true);

    // The succeeded job's detail: its history and its patch.
    await page.click("#jobs tr[data-job=viz-ok]");
    await expect.poll(() => page.locator("#detail ol.timeline li[data-event=succeeded]").count(), WAIT).toBe(1);
    await expect.poll(() => page.textContent("#detail pre.patch"), WAIT).toContain("NOTES.md");

    // The running job's state is marked on the job diagram when it is selected.
    await page.click("#jobs tr[data-job=viz-long]");
    await expect.poll(() => page.locator("#jobs tr[data-job=viz-long]").getAttribute("class"), WAIT).toContain("selected");
    const longStates = (await page.evaluate(() => fetch("/api/live").then((r) => r.json()))) as { jobs: Array<{ jobId: string; machine?: { states: string[] } }> };
    const running = longStates.jobs.find((j) => j.jobId === "viz-long")!.machine!.states;
    await expect
      .poll(() => page.locator("svg.machine[data-machine=job] g.state.selected").evaluateAll((gs) => gs.map((g) => g.getAttribute("data-state"))), WAIT)
      .toEqual(expect.arrayContaining(running));
    expect(await page.locator("svg.machine[data-machine=job] g.state.active").count()).toBeGreaterThan(0);
  }, 120_000);

  it("cancels the running job from its Cancel button", async () => {
    const { page, outside, errors } = browser!;
    await page.locator("#detail button[data-action=cancel]:not([disabled])").click();
    await expect.poll(async () => (await run("viz-long")).record.state, WAIT).toBe("cancelled");
    await expect.poll(() => page.textContent("#jobs tr[data-job=viz-long] td[data-field=state]"), WAIT).toBe("cancelled");
    await expect.poll(() => page.textContent("#detail [data-field=state]"), WAIT).toBe("cancelled");
    await expect.poll(() => page.locator("#detail ol.timeline li[data-event=cancelled]").count(), WAIT).toBe(1);
    await saveScreenshot(page, "viz-e2e");

    // A reload rebuilds the picture from the server (and so from KV and STATUS), not from the page's memory.
    await page.reload();
    await expect.poll(() => page.textContent("#conn"), WAIT).toBe("live");
    await expect.poll(() => page.textContent("#jobs tr[data-job=viz-long] td[data-field=state]"), WAIT).toBe("cancelled");
    await expect.poll(() => page.textContent("#jobs tr[data-job=viz-ok] td[data-field=machine]"), WAIT).toBe("done");
    expect(outside).toEqual([]);
    expect(errors).toEqual([]);
  }, 60_000);

  it("stops on Ctrl-C with exit 0, leaving nothing behind", async () => {
    await browser!.close();
    browser = undefined;
    process.kill(-dev.child.pid!, "SIGINT");
    expect(await dev.exit).toBe(0);
    expect(dev.stderr()).toContain("moonmind dev: stopped");
    expect(stackProcesses()).toEqual([]);
  }, 60_000);
});

/**
 * The agent's bubblewrap sandbox: what an agent inside can and cannot reach, that everything it
 * starts dies with it and with its worker, and that the real CLIs still run inside.
 * Needs `bwrap` (tools/install-bubblewrap.sh); skipped, saying why, where it cannot run.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startModelServer } from "../../src/demo/model-server/index.js";
import { PROJECT_ROOT } from "../../src/paths.js";
import { chownTree, type AgentUser } from "../../src/runtimes/agent-user.js";
import { runProcess, type RunOptions } from "../../src/runtimes/process.js";
import { probeSandbox, sandboxInvocation, type SandboxLayout } from "../../src/runtimes/sandbox.js";
import type { AgentInvocation } from "../../src/runtimes/types.js";

const probe = await probeSandbox();
if (!probe.ok) console.warn(`[sandbox.test] SKIPPED: the sandbox does not work here: ${probe.reason}`);

const PATH = process.env.PATH ?? "/usr/bin:/bin";
const cli = (name: string) => join(PROJECT_ROOT, "node_modules/.bin", name);

/** Outer pids of live processes whose environment holds `KEY=value` (test-only, synchronous). */
function tagged(key: string, value: string): number[] {
  const needle = `${key}=${value}`;
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${name}/status`, "utf8"))) continue;
      if (readFileSync(`/proc/${name}/environ`).includes(needle)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

interface Job {
  dir: string;
  repo: string;
  out: string;
  home: string;
  layout: SandboxLayout;
}

describe.skipIf(!probe.ok)("the agent sandbox (bubblewrap)", () => {
  let root: string;
  let workRoot: string;
  let volume: string;
  let confDir: string;
  let creds: string;
  const secret = `planted-${randomBytes(12).toString("hex")}`;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "moonmind-sandbox-"));
    workRoot = join(root, "workspaces");
    volume = join(root, "volumes", "codex");
    confDir = join(root, "conf");
    creds = join(confDir, "worker.creds");
    await mkdir(volume, { recursive: true });
    await mkdir(confDir);
    await writeFile(join(volume, "auth.json"), JSON.stringify({ OPENAI_API_KEY: secret }));
    await writeFile(creds, `-----BEGIN NATS USER JWT-----\n${secret}\n`);
    await writeFile(join(confDir, "public.txt"), "public\n");
    // Another run's workspace, as the workdir root holds them.
    await mkdir(join(workRoot, "other-run", "repo"), { recursive: true });
    await writeFile(join(workRoot, "other-run", "repo", "secret.txt"), secret);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const newJob = async (user?: AgentUser): Promise<Job> => {
    const dir = await mkdtemp(join(workRoot, "job-"));
    const [repo, out, home] = ["repo", "out", "home"].map((d) => join(dir, d)) as [string, string, string];
    for (const d of [repo, out, home]) await mkdir(d);
    if (user) await chownTree(dir, user);
    return { dir, repo, out, home, layout: { jobDir: dir, writable: [repo, out, home], readable: [confDir], hide: [creds, volume] } };
  };
  const run = (inv: AgentInvocation, job: Job, opts: Partial<RunOptions> = {}) => {
    const lines: string[] = [];
    const done = runProcess(inv, { timeoutMs: 60_000, killGraceMs: 500, onLine: (l) => lines.push(l), sandbox: job.layout, ...opts });
    return { lines, done };
  };

  it("lets the agent work in its repo, out and home and read what it was given, nothing more", async () => {
    const job = await newJob();
    // The stand-in worker holds the secret in its environment, as a worker holds NATS and API keys.
    const agent = `
      const fs = require("fs");
      const r = {};
      const attempt = (name, f) => { try { r[name] = f(); } catch (e) { r[name] = "ERR " + e.code; } };
      for (const [d, f] of [[${JSON.stringify(job.repo)}, "a"], [${JSON.stringify(job.out)}, "b"], [${JSON.stringify(job.home)}, "c"]]) {
        attempt("write " + f, () => { fs.writeFileSync(d + "/" + f, f); return fs.readFileSync(d + "/" + f, "utf8"); });
      }
      attempt("workdir root", () => fs.readdirSync(${JSON.stringify(workRoot)}));
      attempt("other run", () => fs.readFileSync(${JSON.stringify(join(workRoot, "other-run", "repo", "secret.txt"))}, "utf8"));
      attempt("volume", () => fs.readdirSync(${JSON.stringify(volume)}));
      attempt("creds", () => fs.readFileSync(${JSON.stringify(creds)}, "utf8"));
      attempt("public", () => fs.readFileSync(${JSON.stringify(join(confDir, "public.txt"))}, "utf8"));
      attempt("worker home", () => fs.readdirSync(${JSON.stringify(process.env.HOME ?? "/root")}));
      attempt("root home", () => fs.readdirSync("/root"));
      attempt("worker environ", () => fs.readFileSync("/proc/" + process.env.WORKER_PID + "/environ", "utf8"));
      const pids = fs.readdirSync("/proc").filter((p) => /^\\d+$/.test(p));
      r.pids = pids.length;
      r.everything = pids.map((p) => { try { return fs.readFileSync("/proc/" + p + "/environ", "utf8") + fs.readFileSync("/proc/" + p + "/cmdline", "utf8"); } catch (e) { return ""; } }).join("|");
      r.uid = process.getuid();
      console.log(JSON.stringify(r));`;
    const inv: AgentInvocation = { bin: process.execPath, args: ["-e", agent], env: { PATH, HOME: job.home }, cwd: job.repo };
    const worker = `import { runProcess } from ${JSON.stringify(join(PROJECT_ROOT, "src/runtimes/process.ts"))};
      const inv = ${JSON.stringify(inv)};
      inv.env.WORKER_PID = String(process.pid);
      const r = await runProcess(inv, { timeoutMs: 60_000, killGraceMs: 500, sandbox: ${JSON.stringify(job.layout)}, onLine: (l, s) => console.log(s === "stderr" ? "stderr: " + l : l) });
      console.log("exit:" + r.exitCode);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", worker], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, MOONMIND_TEST_SECRET: secret, NATS_CREDS: creds },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += String(d)));
    await new Promise((ok) => child.once("exit", ok));
    expect(output).toContain("exit:0");
    const r = JSON.parse(output.split("\n").find((l) => l.startsWith("{")) ?? "{}") as Record<string, unknown>;
    expect(r).toMatchObject({ "write a": "a", "write b": "b", "write c": "c", public: "public\n" });
    // Only its own run's directory exists, as an empty way through.
    expect(r["workdir root"]).toEqual([basename(job.dir)]);
    expect(r["other run"]).toBe("ERR ENOENT");
    expect(r.volume).toBe("ERR ENOENT");
    // Masked by /dev/null: empty, or refused where a user namespace makes device nodes unusable.
    expect(r.creds).toMatch(/^(|ERR EACCES)$/);
    expect(r["root home"]).toBe("ERR ENOENT");
    expect(r["worker home"]).toMatch(/^ERR /);
    expect(r["worker environ"]).toBe("ERR ENOENT");
    // Its own PID namespace: bwrap's init, the agent, nothing of the machine's.
    expect(r.pids).toBeLessThanOrEqual(3);
    expect(r.uid).not.toBe(0);
    expect(output).not.toContain(secret);
  });

  it("a setsid grandchild dies with the agent, on its own exit and on cancel", async () => {
    for (const how of ["exit", "cancel"] as const) {
      const job = await newJob();
      const tag = randomBytes(6).toString("hex");
      const controller = new AbortController();
      let seen: number[] = [];
      // It waits for "go" (written once the test has seen its processes) before it exits.
      const end = how === "exit" ? "while [ ! -e go ]; do sleep 0.05; done; exit 3" : "trap '' TERM; sleep 1002";
      const script = `(setsid sh -c 'trap "" TERM; exec sleep 1000' &); (setsid sleep 1001 >/dev/null 2>&1 &); sleep 0.2; echo ready; ${end}`;
      const { done } = run({ bin: "/bin/sh", args: ["-c", script], env: { PATH, AGENT_TAG: tag }, cwd: job.repo }, job, {
        signal: controller.signal,
        onLine: (l) => {
          if (l !== "ready") return;
          seen = tagged("AGENT_TAG", tag);
          if (how === "exit") writeFileSync(join(job.repo, "go"), "");
          else controller.abort();
        },
      });
      const r = await done;
      expect(seen.length, how).toBeGreaterThanOrEqual(4); // bwrap, its init, sh, two sleeps
      expect(tagged("AGENT_TAG", tag), how).toEqual([]);
      expect(r.survivors).toBeUndefined();
      if (how === "exit") expect(r.exitCode).toBe(3);
      else expect(r.cancelled).toBe(true);
    }
  });

  it("when its worker is SIGKILLed, the agent and everything it started die", async () => {
    const job = await newJob();
    const tag = randomBytes(6).toString("hex");
    const inv: AgentInvocation = {
      bin: "/bin/sh",
      args: ["-c", "(setsid sleep 1000 &); trap '' TERM; echo ready; sleep 1001"],
      env: { PATH, AGENT_TAG: tag },
      cwd: job.repo,
    };
    const worker = `import { runProcess } from ${JSON.stringify(join(PROJECT_ROOT, "src/runtimes/process.ts"))};
      await runProcess(${JSON.stringify(inv)}, { timeoutMs: 60_000, killGraceMs: 500, sandbox: ${JSON.stringify(job.layout)}, onLine: (l) => console.log(l) });`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", worker], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((ok) => child.stdout.on("data", (d: Buffer) => String(d).includes("ready") && ok()));
    await vi.waitFor(() => expect(tagged("AGENT_TAG", tag).length).toBeGreaterThanOrEqual(4));
    child.kill("SIGKILL");
    await vi.waitFor(() => expect(tagged("AGENT_TAG", tag)).toEqual([]), { timeout: 5_000, interval: 50 });
  });

  it("reports a CLI that is not there as one that could not start", async () => {
    const job = await newJob();
    const r = await run({ bin: join(job.dir, "no-such-cli"), args: [], env: { PATH }, cwd: job.repo }, job).done;
    expect(r.spawnError).toBeDefined();
    expect(r.exitCode).toBe(127);
  });

  it("finds a bare command on the CLI's PATH, and refuses to make anything outside the run writable", async () => {
    const job = await newJob();
    const { lines, done } = run({ bin: "sh", args: ["-c", "echo in $PWD"], env: { PATH }, cwd: job.repo }, job);
    expect((await done).exitCode).toBe(0);
    expect(lines).toEqual([`in ${job.repo}`]);
    expect(() => sandboxInvocation({ bin: "/bin/true", args: [], env: {}, cwd: job.repo }, { jobDir: job.dir, writable: [workRoot] })).toThrow(/outside the run's directory/);
  });

  describe("the real CLIs run inside", () => {
    const version = async (name: string, expected: RegExp) => {
      const job = await newJob();
      const { lines, done } = run({ bin: cli(name), args: ["--version"], env: { PATH, HOME: job.home }, cwd: job.repo }, job);
      const r = await done;
      expect(r.exitCode, lines.join("\n")).toBe(0);
      expect(lines.join("\n")).toMatch(expected);
    };
    it("codex --version", () => version("codex", /codex-cli \d+\.\d+/));
    it("claude --version", () => version("claude", /\d+\.\d+\.\d+ \(Claude Code\)/));
    it("gemini --version", () => version("gemini", /^\d+\.\d+\.\d+$/m));

    it("codex login status reads CODEX_HOME inside the sandbox: not logged in", async () => {
      const job = await newJob();
      const { lines, done } = run({ bin: cli("codex"), args: ["login", "status"], env: { PATH, HOME: job.home, CODEX_HOME: job.home }, cwd: job.repo }, job);
      const r = await done;
      expect(r.exitCode).toBe(1);
      expect(lines.join("\n")).toMatch(/Not logged in/);
    });

    // codex runs the model's commands in its own bwrap sandbox: that must work inside ours, as
    // root's uid-namespaced agent and as an agent user.
    const users: (AgentUser | undefined)[] = [undefined, ...(process.getuid?.() === 0 ? [{ name: "nobody", uid: 65534, gid: 65534 }] : [])];
    for (const user of users) {
      it(`codex exec runs a command the model asks for${user ? ` (as ${user.name})` : ""}`, async () => {
        await using server = await startModelServer();
        const job = await newJob();
        const tmp = join(job.dir, "tmp");
        await mkdir(tmp);
        await writeFile(
          join(job.home, "config.toml"),
          [
            'model_provider = "mock"',
            'approval_policy = "never"',
            "[analytics]",
            "enabled = false",
            "[features]",
            "plugins = false",
            "[model_providers.mock]",
            'name = "mock"',
            `base_url = "${server.url}/v1"`,
            'wire_api = "responses"',
            'env_key = "MOCK_KEY"',
            "request_max_retries = 0",
            "stream_max_retries = 0",
            "",
          ].join("\n"),
        );
        if (user) await chownTree(job.dir, user);
        else await chmod(tmp, 0o700);
        const args = ["exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "--cd", job.repo,
          "--output-last-message", join(job.out, "last-message.md"), "--", "write hello.txt: from the sandbox\nsay done"];
        // TMPDIR off /tmp: codex puts its helper links (its sandbox launcher) only outside the temp dir.
        const env = { PATH, HOME: job.home, CODEX_HOME: job.home, TMPDIR: tmp, MOCK_KEY: "sk-test" };
        const { lines, done } = run({ bin: cli("codex"), args, env, cwd: job.repo, ...(user ? { user } : {}) }, job);
        const r = await done;
        expect(r.exitCode, lines.join("\n")).toBe(0);
        expect(readFileSync(join(job.repo, "hello.txt"), "utf8")).toBe("from the sandbox\n");
        expect(readFileSync(join(job.out, "last-message.md"), "utf8").trim()).toBe("done");
      });
    }
  });
});

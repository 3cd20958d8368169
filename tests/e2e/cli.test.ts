/** The `moonmind` command's contract without a stack: usage, configuration and routing. */
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
const run = (args: string[], env: Record<string, string> = {}, input?: string) =>
  execa(process.execPath, [BIN, ...args], {
    env: { MOONMIND_LOG_LEVEL: "error", ...env },
    reject: false,
    timeout: 30_000,
    ...(input === undefined ? { stdin: "ignore" as const } : { input }),
  });

describe("moonmind", () => {
  it("prints the route of a repository, human and --json", async () => {
    const human = await run(["route", "git@github.com:Org/Repo.git"]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^jobs\.codex\.shard\.2 {2}\(consumer codex-shard-2, key 'org\/repo', shard 2 of 3\)$/);
    const json = await run(["route", "org/repo", "--runtime", "claude", "--json"], { MOONMIND_CLAUDE_SHARDS: "4" });
    expect(JSON.parse(json.stdout)).toMatchObject({ runtime: "claude", key: "org/repo", shards: 4, subject: expect.stringMatching(/^jobs\.claude\.shard\.[0-3]$/) });
  });

  it("exits 2 on bad usage", async () => {
    expect((await run(["route"])).exitCode).toBe(2);
    expect((await run(["no-such-verb"])).exitCode).toBe(2);
    const badJson = await run(["submit", "--file", "-"], {}, "{not json");
    expect(badJson.exitCode).toBe(2);
    expect(badJson.stderr).toMatch(/--file -/);
  });

  it("exits 78 naming every bad variable", async () => {
    const r = await run(["worker"], { MOONMIND_WORKER_RUNTIMES: "cobol", MOONMIND_CODEX_SHARDS: "0" });
    expect(r.exitCode).toBe(78);
    expect(r.stderr).toContain("MOONMIND_WORKER_RUNTIMES");
    expect(r.stderr).toContain("MOONMIND_CODEX_SHARDS");
  });

  it("exits 78 with the fix when an actor cannot reach NATS in its connect wait", async () => {
    const r = await run(["intake"], { NATS_URL: "nats://127.0.0.1:1", MOONMIND_CONNECT_WAIT_MS: "1500" });
    expect(r.exitCode).toBe(78);
    expect(r.stderr).toMatch(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
    expect(r.stderr).toMatch(/fix: .*NATS_URL/);
  });

  it("refuses a job carrying a secret before anything is sent, without echoing it", async () => {
    const secret = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";
    const r = await run(["submit", "--file", "-"], { NATS_URL: "nats://127.0.0.1:1" }, JSON.stringify({ repository: "org/repo", instructions: "x", metadata: { token: secret } }));
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/'metadata.token' looks like a secret/);
    expect(r.stderr + r.stdout).not.toContain(secret);
  });

  it("calls a missing --file, a malformed id and a bad option usage errors (exit 2), before connecting", async () => {
    const offline = { NATS_URL: "nats://127.0.0.1:1" };
    const missing = await run(["submit", "--file", "/nonexistent/job.json"], offline);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/--file \/nonexistent\/job\.json: no such file/);
    for (const args of [["watch", "a.b"], ["logs", "a*"], ["artifacts", "x y"], ["runs", "get", "a>b"], ["runs", "cancel", "a.b"], ["artifacts", "ok-id", "diff"], ["runs", "list", "--state", "sleeping"], ["runs", "list", "--limit", "0"], ["dead", "replay"]]) {
      const r = await run(args, offline);
      expect({ args, code: r.exitCode }).toEqual({ args, code: 2 });
      expect(r.stderr).not.toMatch(/illegal subject|at .*\.ts:\d+/i);
    }
  }, 120_000);

  it("lists the operator verbs in its help", async () => {
    const help = await run(["--help"]);
    for (const verb of ["shards", "workers", "runs", "logs", "artifacts", "dead"]) expect(help.stdout).toMatch(new RegExp(`^  ${verb}\\b`, "m"));
  });
});

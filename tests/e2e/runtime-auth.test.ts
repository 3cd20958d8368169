/**
 * The adapters' login checks against the real pinned CLIs (node_modules/.bin): offline, no
 * prompt, and the remedy named when they fail.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execa } from "execa";
import { loadConfig } from "../../src/config.js";
import { createAdapter } from "../../src/runtimes/index.js";
import type { LoginVolume } from "../../src/runtimes/types.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-auth-"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const volume = async (name: string): Promise<LoginVolume> => {
  const path = join(dir, name);
  await mkdir(path, { recursive: true });
  return { name, path };
};
const adapter = (runtime: "codex" | "claude" | "gemini") => createAdapter(runtime, loadConfig({}));

/** Every file under `root`, with its mode and content: what a check must leave as it found it. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(root, p)] = `${(statSync(p).mode & 0o777).toString(8)} ${readFileSync(p, "utf8")}`;
    }
  };
  walk(root);
  return out;
}

describe("codex login check (real codex 0.169.0)", () => {
  it("uses the pinned binary", async () => {
    expect(await adapter("codex").version()).toBe("codex-cli 0.169.0");
  });

  it("fails on an empty volume, naming the volume and the fix", async () => {
    const v = await volume("codex-empty");
    const check = await adapter("codex").check(v);
    expect(check.state).toBe("unauthenticated");
    expect(check.result).toMatchObject({ status: "failed", volume: "codex-empty" });
    expect(check.result.message).toMatch(/codex login status failed for volume codex-empty.*tools\/auth-codex-volume\.sh/);
  });

  it("passes after `codex login --with-api-key` into the volume", async () => {
    const v = await volume("codex-key");
    const codex = adapter("codex");
    await execa(codex.bin, ["login", "--with-api-key"], { env: { PATH: process.env.PATH!, CODEX_HOME: v.path, HOME: v.path }, input: "sk-test-not-real\n" });
    const check = await codex.check(v);
    expect(check).toMatchObject({ state: "ready", result: { status: "passed" } });
    expect(check.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it("merges approval_policy = \"never\" into the volume's config.toml, keeping the user's settings", async () => {
    const v = await volume("codex-config");
    await writeFile(join(v.path, "config.toml"), 'model = "o3"\napproval_policy = "on-request"\n\n[profiles.x]\nmodel = "y"\n');
    await adapter("codex").prepareVolume(v);
    const text = execFileSync("cat", [join(v.path, "config.toml")], { encoding: "utf8" });
    expect(text).toBe('model = "o3"\napproval_policy = "never"\n\n[profiles.x]\nmodel = "y"\n');
  });

  it("reports a missing binary as unavailable, with the fix", async () => {
    const missing = createAdapter("codex", loadConfig({ MOONMIND_CODEX_BIN: join(dir, "no-such-codex") }));
    const check = await missing.check(await volume("codex-nobin"));
    expect(check.state).toBe("unavailable");
    expect(check.result.message).toMatch(/MOONMIND_CODEX_BIN/);
  });
});

describe("claude login check (real claude 2.1.197)", () => {
  it("uses the pinned binary", async () => {
    expect(await adapter("claude").version()).toMatch(/^2\.1\.197/);
  });

  it("fails with no login on the volume", async () => {
    const check = await adapter("claude").check(await volume("claude-none"));
    expect(check.state).toBe("unauthenticated");
    expect(check.result.message).toMatch(/claude auth status failed for volume claude-none.*tools\/auth-claude-volume\.sh/);
  });

  it.each([
    ["api-key", "sk-ant-test-not-real", /api_key/],
    ["oauth-token", "sk-ant-oat01-test-not-real", /oauth_token/],
  ])("passes with an %s file", async (file, content, method) => {
    const v = await volume(`claude-${file}`);
    await writeFile(join(v.path, file), `${content}\n`, { mode: 0o600 });
    const check = await adapter("claude").check(v);
    expect(check).toMatchObject({ state: "ready", result: { status: "passed" } });
    expect(check.result.message).toMatch(method);
  });

  it("passes with a credentials file, and limits that rotating login to one run at a time", async () => {
    const v = await volume("claude-creds");
    const creds = { claudeAiOauth: { accessToken: "a", refreshToken: "r", expiresAt: Date.now() + 3_600_000, scopes: ["user:inference"], subscriptionType: "max" } };
    await writeFile(join(v.path, ".credentials.json"), JSON.stringify(creds), { mode: 0o600 });
    const claude = adapter("claude");
    expect(await claude.check(v)).toMatchObject({ state: "ready", result: { status: "passed" } });
    expect(await claude.maxParallel(v)).toBe(1);
  });

  it("fails with a credentials file the CLI wiped after a rejected refresh", async () => {
    const v = await volume("claude-wiped");
    const wiped = { claudeAiOauth: { accessToken: "", refreshToken: "", expiresAt: 0, scopes: [] } };
    await writeFile(join(v.path, ".credentials.json"), JSON.stringify(wiped), { mode: 0o600 });
    expect((await adapter("claude").check(v)).state).toBe("unauthenticated");
  });
});

describe("gemini login check (real gemini 0.61.0)", () => {
  it("uses the pinned binary", async () => {
    expect(await adapter("gemini").version()).toBe("0.61.0");
  });

  it("the CLI itself exits fast with no auth, and the check reports it failed", async () => {
    const v = await volume("gemini-none");
    const gemini = adapter("gemini");
    const run = await execa(gemini.bin, ["--prompt=hello", "--output-format", "stream-json", "--skip-trust"], {
      env: { PATH: process.env.PATH!, GEMINI_CLI_HOME: v.path, HOME: v.path, GEMINI_CLI_NO_RELAUNCH: "true" },
      cwd: v.path,
      stdin: "ignore",
      reject: false,
      timeout: 60_000,
    });
    expect(run.exitCode).toBe(41);
    expect(run.timedOut).toBe(false);
    const check = await gemini.check(v);
    expect(check.state).toBe("unauthenticated");
    expect(check.result.message).toMatch(/tools\/auth-gemini-volume\.sh/);
  });

  it("passes with a settings file and its login", async () => {
    const v = await volume("gemini-key");
    await mkdir(join(v.path, ".gemini"));
    await writeFile(join(v.path, ".gemini/settings.json"), JSON.stringify({ security: { auth: { selectedType: "gemini-api-key" } } }));
    await writeFile(join(v.path, "api-key"), "test-key\n", { mode: 0o600 });
    expect(await adapter("gemini").check(v)).toMatchObject({ state: "ready", result: { status: "passed" } });
  });

  it("fails a Google login without its oauth_creds.json", async () => {
    const v = await volume("gemini-oauth");
    await mkdir(join(v.path, ".gemini"));
    await writeFile(join(v.path, ".gemini/settings.json"), JSON.stringify({ security: { auth: { selectedType: "oauth-personal" } } }));
    const check = await adapter("gemini").check(v);
    expect(check.state).toBe("unauthenticated");
    expect(check.result.message).toMatch(/oauth_creds\.json/);
  });

  it("leaves nothing in the volume however often it checks a paused login (no projects.json.<uuid>.tmp)", async () => {
    const v = await volume("gemini-paused");
    await mkdir(join(v.path, ".gemini"));
    await writeFile(join(v.path, ".gemini/settings.json"), JSON.stringify({ security: { auth: { selectedType: "oauth-personal" } } }));
    const before = snapshot(v.path);
    const gemini = adapter("gemini");
    for (let i = 0; i < 3; i++) expect((await gemini.check(v)).state).toBe("unauthenticated");
    expect(snapshot(v.path)).toEqual(before);
  });

  it("runs its probes (check, version) on a throwaway home of their own, removed afterwards", async () => {
    // The real pinned binary, behind a wrapper that notes the home each call gets.
    const log = join(dir, "gemini-homes.log");
    const wrapper = join(dir, "gemini-noting-home");
    await writeFile(wrapper, `#!/bin/sh\nprintf '%s %s\\n' "\${HOME:-unset}" "\${GEMINI_CLI_HOME:-unset}" >> '${log}'\nexec '${adapter("gemini").bin}' "$@"\n`);
    await chmod(wrapper, 0o755);
    const gemini = createAdapter("gemini", loadConfig({ MOONMIND_GEMINI_BIN: wrapper }));
    const v = await volume("gemini-probed");
    await mkdir(join(v.path, ".gemini"));
    await writeFile(join(v.path, ".gemini/settings.json"), JSON.stringify({ security: { auth: { selectedType: "gemini-api-key" } } }));
    await writeFile(join(v.path, "api-key"), "test-key\n", { mode: 0o600 });
    const before = snapshot(v.path);
    expect(await gemini.version()).toBe("0.61.0");
    expect((await gemini.check(v)).state).toBe("ready");
    const homes = (await readFile(log, "utf8")).trim().split("\n").map((l) => l.split(" "));
    expect(homes).toHaveLength(2);
    for (const [home, cliHome] of homes) {
      expect(cliHome).toBe(home);
      expect([v.path, homedir(), "unset"]).not.toContain(home);
      expect(existsSync(home!)).toBe(false);
    }
    expect(snapshot(v.path)).toEqual(before);
  });

  it("refuses the Google sign-in without a terminal before touching the volume (tools/auth-gemini-volume.sh)", async () => {
    const script = join(import.meta.dirname, "../../tools/auth-gemini-volume.sh");
    const run = (...args: string[]) => execa(script, args, { stdin: "ignore", reject: false, timeout: 60_000 });
    const v = await volume("gemini-no-tty");
    await mkdir(join(v.path, ".gemini"));
    await writeFile(join(v.path, ".gemini/settings.json"), JSON.stringify({ security: { auth: { selectedType: "gemini-api-key" } } }));
    await writeFile(join(v.path, "api-key"), "test-key\n", { mode: 0o600 });
    const before = snapshot(v.path);
    const refused = await run("--local", v.path);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/the gemini login needs a terminal; use --api-key .* or --sync DIR/);
    expect(snapshot(v.path)).toEqual(before);
    // A volume that is not there yet is not made either.
    const fresh = join(dir, "gemini-no-tty-fresh");
    expect((await run("--local", fresh)).exitCode).toBe(2);
    expect(existsSync(fresh)).toBe(false);
    // What needs no terminal still runs: the worker's check passes on the untouched login.
    const check = await run("--local", v.path, "--check");
    expect(check.stdout).toMatch(/gemini login on .*: passed \(ready\)/);
    expect(check.exitCode).toBe(0);
  });
});

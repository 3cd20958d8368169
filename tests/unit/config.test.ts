import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, SETTINGS } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";

const root = join(import.meta.dirname, "../..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs)$/.test(name) ? [p] : [];
  });
}

describe(".env-template", () => {
  const COMPOSE_ONLY = "# ---- docker compose only";
  const template = readFileSync(join(root, ".env-template"), "utf8");
  const [runtimePart, composePart = ""] = template.split(COMPOSE_ONLY);
  const listedIn = (text: string) => new Set([...text.matchAll(/^(?:# )?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));

  it("lists exactly the variables in SETTINGS", () => {
    expect(new Set(listedIn(runtimePart!))).toEqual(new Set(Object.keys(SETTINGS)));
  });

  it("lists, in its compose part, every other variable the compose files read", () => {
    const read = new Set<string>();
    for (const file of ["docker-compose.yaml", "docker-compose.cluster.yaml"]) {
      for (const m of readFileSync(join(root, file), "utf8").matchAll(/\$\{([A-Z][A-Z0-9_]+)/g)) read.add(m[1]!);
    }
    const composeOnly = [...read].filter((name) => !(name in SETTINGS)).sort();
    expect(composeOnly.length).toBeGreaterThan(0);
    expect(composeOnly).toEqual([...listedIn(composePart)].sort());
  });

  it("SETTINGS covers every variable the code reads", () => {
    const read = new Set<string>();
    for (const dir of ["src", "actors", "machines"]) {
      for (const file of sourceFiles(join(root, dir))) {
        const text = readFileSync(file, "utf8");
        for (const m of text.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)|process\.env\[["']([A-Z][A-Z0-9_]+)["']\]|env\.([A-Z][A-Z0-9_]+)/g)) {
          read.add((m[1] ?? m[2] ?? m[3])!);
        }
      }
    }
    // The operating system's own variables are no settings: PATH finds the agent CLIs, TERM serves a login's terminal.
    const osVariables = new Set(["PATH", "TERM", "TMPDIR", "NO_COLOR", "FORCE_COLOR", "CI"]);
    const missing = [...read].filter((name) => !(name in SETTINGS) && !osVariables.has(name));
    expect(missing).toEqual([]);
  });
});

describe("README", () => {
  it("documents every setting in its configuration table", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const missing = Object.keys(SETTINGS).filter((name) => !readme.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});

describe("loadConfig", () => {
  it("runs on defaults alone", () => {
    const c = loadConfig({});
    expect(c.shardCounts).toEqual({ codex: 3, claude: 1, gemini: 1 });
    expect(c.workerRuntimes).toEqual(["codex"]);
    expect(c.workerShards).toEqual([0, 1, 2].map((shard) => ({ runtime: "codex", shard })));
    expect(c.env.MOONMIND_DEFAULT_TASK_RUNTIME).toBe("codex");
    expect(c.workdir).toBe("./var/workspaces");
  });

  it("names every bad variable in one error", () => {
    let error: unknown;
    try {
      loadConfig({ MOONMIND_CODEX_SHARDS: "65", MOONMIND_ACK_WAIT_MS: "soon", MOONMIND_KEEP_WORKSPACES: "maybe" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/3 variables/);
    expect(message).toContain("MOONMIND_CODEX_SHARDS=\"65\"");
    expect(message).toContain("MOONMIND_ACK_WAIT_MS=\"soon\"");
    expect(message).toContain("MOONMIND_KEEP_WORKSPACES=\"maybe\"");
  });

  it("parses a worker's runtimes and shard list", () => {
    const c = loadConfig({
      MOONMIND_WORKER_RUNTIMES: "codex,claude",
      MOONMIND_CLAUDE_SHARDS: "2",
      MOONMIND_WORKER_SHARDS: "codex:0-1,claude:1",
    });
    expect(c.workerShards).toEqual([
      { runtime: "codex", shard: 0 },
      { runtime: "codex", shard: 1 },
      { runtime: "claude", shard: 1 },
    ]);
    expect(loadConfig({ MOONMIND_WORKER_SHARDS: "2" }).workerShards).toEqual([{ runtime: "codex", shard: 2 }]);
  });

  it.each([
    [{ MOONMIND_WORKER_RUNTIMES: "codex,cobol" }, /MOONMIND_WORKER_RUNTIMES/],
    [{ MOONMIND_WORKER_SHARDS: "5" }, /codex shard 5 does not exist/],
    [{ MOONMIND_WORKER_SHARDS: "gemini:0" }, /MOONMIND_WORKER_SHARDS/],
    [{ MOONMIND_WORKER_ID: "a.b" }, /MOONMIND_WORKER_ID/],
    [{ MOONMIND_RETRY_BACKOFF_MS: "10000", MOONMIND_RETRY_BACKOFF_MAX_MS: "5" }, /MOONMIND_RETRY_BACKOFF_MAX_MS/],
    [{ MOONMIND_GIT_BASE_URL: "not a url" }, /MOONMIND_GIT_BASE_URL/],
  ])("refuses %o", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});

/** What the adapters build and read, without running anything: argv, environment, output parsing. */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createAdapter } from "../../src/runtimes/index.js";
import { volumeForShard } from "../../src/runtimes/cli-adapter.js";
import { mergeTopLevelToml } from "../../src/runtimes/toml.js";
import type { PrivateHome } from "../../src/runtimes/types.js";
import type { JobRequest } from "../../src/schemas/job.js";
import { startupProblems } from "../../src/startup.js";

const job = (runtime: "codex" | "claude" | "gemini", extra: Partial<JobRequest["task"]> = {}): JobRequest => ({
  id: "j1",
  type: "task",
  repository: "org/repo",
  targetRuntime: runtime,
  maxAttempts: 3,
  task: { instructions: "-n fix it", runtime: { mode: runtime }, ...extra },
});
const home: PrivateHome = { dir: "/run/home", env: { HOME: "/run/home", SECRET_OF_HOME: "x" }, writeBack: async () => "unchanged" };
const ws = { repoDir: "/run/repo", outDir: "/run/out" };

describe("adapter invocations", () => {
  const pushToken = ["ghp", "pushtokenoftheworker0123456789ab"].join("_");
  const dirty = { ...process.env, NATS_URL: "nats://secret@host", NATS_CREDS: "/creds", MOONMIND_WORKER_ID: "w", OPENAI_API_KEY: "sk-x", AWS_SECRET_ACCESS_KEY: "y", MOONMIND_GIT_PUSH_TOKEN: pushToken };

  it.each(["codex", "claude", "gemini"] as const)("%s gets none of the worker's NATS settings or unrelated secrets", (runtime) => {
    const saved = { ...process.env };
    Object.assign(process.env, dirty);
    try {
      const inv = createAdapter(runtime, loadConfig({})).invocation(job(runtime), ws, home);
      for (const name of ["NATS_URL", "NATS_CREDS", "MOONMIND_WORKER_ID", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "MOONMIND_GIT_PUSH_TOKEN"]) {
        expect(inv.env[name], name).toBeUndefined();
      }
      // The push token is the worker's: under no name, nor in the command line.
      expect(JSON.stringify([inv.env, inv.args])).not.toContain(pushToken);
      expect(inv.env.HOME).toBe("/run/home");
      expect(inv.cwd).toBe("/run/repo");
    } finally {
      process.env = saved;
    }
  });

  it("codex: never asks for approval, a sandbox, JSONL, the final message to a file, the prompt after --", () => {
    const inv = createAdapter("codex", loadConfig({ MOONMIND_CODEX_SANDBOX: "read-only" })).invocation(
      job("codex", { runtime: { mode: "codex", model: "o3", effort: "high" } }),
      ws,
      home,
    );
    expect(inv.args.slice(0, 3)).toEqual(["exec", "--json", "--skip-git-repo-check"]);
    expect(inv.args).toContain('approval_policy="never"');
    expect(inv.args.join(" ")).toContain("--sandbox read-only --cd /run/repo --output-last-message /run/out/last-message.md --model o3 -c model_reasoning_effort=\"high\"");
    expect(inv.args.slice(-2)).toEqual(["--", "-n fix it"]);
    expect(inv.lastMessageFile).toBe("/run/out/last-message.md");
  });

  it("claude: print mode, stream-json with verbose, the permission mode and tools, the prompt after --", () => {
    const inv = createAdapter("claude", loadConfig({ MOONMIND_CLAUDE_MAX_TURNS: "5" })).invocation(job("claude"), ws, home);
    expect(inv.args.join(" ")).toMatch(/^--print --output-format stream-json --verbose --permission-mode acceptEdits --max-turns 5 --allowedTools Bash Edit Write Read Glob Grep -- -n fix it$/);
    expect(inv.env).toMatchObject({ CLAUDE_CODE_MAX_RETRIES: "2", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1", DISABLE_AUTOUPDATER: "1" });
    // A follow-up: the restored session file continues (a new --session-id or --fork-session would start another).
    const resumed = createAdapter("claude", loadConfig({})).invocation(job("claude"), ws, home, { session: "/run/home/projects/-old/abc.jsonl" });
    expect(resumed.args.join(" ")).toContain("--permission-mode acceptEdits --resume /run/home/projects/-old/abc.jsonl --allowedTools");
  });

  it("gemini: the prompt as --prompt= (a leading '-' stays text), yolo, trusted workspace, one process", () => {
    const inv = createAdapter("gemini", loadConfig({ MOONMIND_GEMINI_MODEL: "gemini-2.5-flash" })).invocation(job("gemini"), ws, home);
    expect(inv.args).toEqual(["--prompt=-n fix it", "--output-format", "stream-json", "--approval-mode", "yolo", "--skip-trust", "--model", "gemini-2.5-flash"]);
    expect(inv.env).toMatchObject({ GEMINI_CLI_NO_RELAUNCH: "true", GEMINI_CLI_TRUST_WORKSPACE: "true" });
  });
});

describe("output parsing", () => {
  it("codex: messages, progress, the turn's verdict; retry notices are not errors", () => {
    const parse = createAdapter("codex", loadConfig({})).createParser();
    expect(parse('{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"done"}}')).toEqual([{ kind: "message", text: "done" }]);
    expect(parse('{"type":"error","message":"Reconnecting... 1/5"}')).toEqual([{ kind: "progress", text: "Reconnecting... 1/5" }]);
    expect(parse('{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized"}}')).toEqual([
      { kind: "error", text: "unexpected status 401 Unauthorized" },
      { kind: "result", ok: false, text: "unexpected status 401 Unauthorized" },
    ]);
    expect(parse('{"type":"turn.completed","usage":{}}')).toEqual([{ kind: "result", ok: true }]);
    expect(parse("not json")).toEqual([]);
  });

  it("claude: a failed turn labelled success is a failure", () => {
    const parse = createAdapter("claude", loadConfig({})).createParser();
    const events = parse('{"type":"result","subtype":"success","is_error":true,"api_error_status":401,"result":"Invalid API key · Fix external API key"}');
    expect(events).toContainEqual({ kind: "result", ok: false, text: "Invalid API key · Fix external API key" });
    expect(parse('{"type":"result","subtype":"success","is_error":false,"result":"Created hello.txt."}')).toEqual([
      { kind: "message", text: "Created hello.txt." },
      { kind: "result", ok: true },
    ]);
  });

  it("gemini: streamed chunks join per run, and each run's parser keeps its own", () => {
    const gemini = createAdapter("gemini", loadConfig({}));
    const a = gemini.createParser();
    const b = gemini.createParser();
    a('{"type":"message","role":"assistant","content":"Hello ","delta":true}');
    b('{"type":"message","role":"assistant","content":"Other","delta":true}');
    expect(a('{"type":"message","role":"assistant","content":"world","delta":true}')).toEqual([{ kind: "message", text: "Hello world" }]);
    expect(a('{"type":"result","status":"error","error":{"message":"[API Error: 401]"}}')).toContainEqual({ kind: "result", ok: false, text: "[API Error: 401]" });
  });

  it.each([
    ["codex", "Your access token could not be refreshed because your refresh token was already used. Please log out and sign in again."],
    ["codex", "unexpected status 401 Unauthorized: Provided authentication token is expired."],
    ["claude", "Failed to authenticate. API Error: 401 OAuth token has expired."],
    ["claude", '"error":"authentication_failed"'],
    ["gemini", '[API Error: {"error":{"code":401,"message":"API key not valid.","status":"UNAUTHENTICATED"}}]'],
    ["gemini", "Manual authorization is required but the current session is non-interactive"],
  ] as const)("%s recognises an expired login in: %s", (runtime, text) => {
    expect(createAdapter(runtime, loadConfig({})).loginExpired(text)).toBe(true);
  });

  it.each(["codex", "claude", "gemini"] as const)("%s does not mistake an ordinary failure for an expired login", (runtime) => {
    expect(createAdapter(runtime, loadConfig({})).loginExpired("API Error: 500 Internal server error")).toBe(false);
  });
});

describe("volumes and configuration", () => {
  it("gives every shard its own login with {shard}", () => {
    expect(volumeForShard("codex_{shard}", "/var/lib/codex-auth/{shard}", 2)).toEqual({ name: "codex_2", path: "/var/lib/codex-auth/2" });
    expect(createAdapter("claude", loadConfig({ CLAUDE_VOLUME_PATH: "/v/{shard}" })).volumeFor(0).path).toBe("/v/0");
  });

  it("sets top-level TOML keys and keeps everything else", () => {
    expect(mergeTopLevelToml("", { approval_policy: '"never"' })).toBe('# set by MoonMind Runtime: jobs run unattended\napproval_policy = "never"\n');
    expect(mergeTopLevelToml('[profiles.x]\napproval_policy = "on-request"\n', { approval_policy: '"never"' })).toBe(
      '# set by MoonMind Runtime: jobs run unattended\napproval_policy = "never"\n\n[profiles.x]\napproval_policy = "on-request"\n',
    );
    const user = 'model = "o3" # mine\napproval_policy="untrusted"\n';
    expect(mergeTopLevelToml(user, { approval_policy: '"never"' })).toBe('model = "o3" # mine\napproval_policy = "never"\n');
  });

  it("start-up requires an embedding key where the provider is google", () => {
    expect(startupProblems(loadConfig({ DEFAULT_EMBEDDING_PROVIDER: "google" }))).toEqual([expect.stringMatching(/GOOGLE_API_KEY or GEMINI_API_KEY/)]);
    expect(startupProblems(loadConfig({ DEFAULT_EMBEDDING_PROVIDER: "google", GEMINI_API_KEY: "k" }))).toEqual([]);
    expect(startupProblems(loadConfig({}))).toEqual([]);
  });
});

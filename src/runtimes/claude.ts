/**
 * Claude Code adapter. Logins on the volume, best first:
 *   oauth-token        `claude setup-token`'s long-lived token (CLAUDE_CODE_OAUTH_TOKEN): never
 *                      refreshes, so one login safely serves many runs;
 *   api-key            an API key (ANTHROPIC_API_KEY);
 *   .credentials.json  a rotating subscription login: its refresh endpoint cannot be pointed at a
 *                      broker (the CLI accepts only vendor hosts), so it gets one run at a time, and
 *                      a wiped file (after a rejected refresh) is never written back.
 * Preflight: `claude auth status` (offline JSON). Runs: `claude --print` with stream-json output.
 */
import { cost, count } from "./usage.js";
import { claudeUsageLimit } from "./usage-limit.js";
import { listAgentDir } from "./agent-files.js";
import { join } from "node:path";
import { readSessionFiles, writeSessionFiles, type SessionSupport } from "./session.js";
import type { JobRequest } from "../schemas/job.js";
import { redactText } from "../secrets.js";
import { buildPrompt } from "./prompt.js";
import { AGENT_GIT_IDENTITY, CliAdapterBase, cliVersion, type CliSettings, oneLine, runCheck } from "./cli-adapter.js";
import { sha256Hex } from "../auth/credential-store.js";
import { exists, readIfExists, seedHome, type CredentialWriter } from "./home.js";
import {
  baseAgentEnv,
  type AgentInvocation,
  type AuthCheck,
  type LoginVolume,
  type OutputEvent,
  type PrivateHome,
  type RuntimeAdapter,
  type WorkspacePaths,
  type UsageLimit,
} from "./types.js";

export interface ClaudeSettings extends CliSettings {
  model?: string | undefined;
  permissionMode: string;
  allowedTools: string[];
  maxRetries: number;
  maxTurns?: number | undefined;
  baseUrl?: string | undefined;
  maxParallel: number;
  writer?: CredentialWriter | undefined;
  checkTimeoutMs?: number;
}

/** The levels `claude --effort` takes; any other value a job names is not passed on. */
const CLAUDE_EFFORTS = new Set(["low", "medium", "high", "xhigh", "max"]);

export const CLAUDE_FILES = { oauthToken: "oauth-token", apiKey: "api-key", credentials: ".credentials.json" } as const;

const LOGIN_EXPIRED = [
  /authentication_failed/i,
  /authentication_error/i,
  /"api_error_status"\s*:\s*401/,
  /Invalid API key/i,
  /OAuth token has expired/i,
  /invalid_grant/i,
  /Please run \/login/i,
  /"loggedIn"\s*:\s*false/,
];

export function isUsableClaudeCredentials(bytes: Uint8Array): boolean {
  try {
    const c = JSON.parse(Buffer.from(bytes).toString("utf8")) as { claudeAiOauth?: { accessToken?: string; refreshToken?: string } };
    return Boolean(c.claudeAiOauth?.accessToken && c.claudeAiOauth?.refreshToken);
  } catch {
    return false;
  }
}

export class ClaudeAdapter extends CliAdapterBase<ClaudeSettings> implements RuntimeAdapter {
  readonly runtime = "claude" as const;
  readonly requiresResult = true;

  async check(volume: LoginVolume, signal?: AbortSignal): Promise<AuthCheck> {
    const login = await this.loginEnv(volume);
    const run = await runCheck(
      { bin: this.bin, args: ["auth", "status"], env: { ...this.baseEnv(volume.path), ...login.env }, cwd: "/" },
      this.settings.checkTimeoutMs ?? 30_000,
      signal,
    );
    const checkedAt = new Date().toISOString();
    const base = { checkedAt, volume: volume.name };
    if (run.missing || run.exitCode === 127) {
      return {
        state: "unavailable",
        fingerprint: login.fingerprint,
        result: { ...base, status: "failed", message: `claude CLI not found at '${this.bin}': npm install @anthropic-ai/claude-code@2.1.197, or set MOONMIND_CLAUDE_BIN` },
      };
    }
    let status: { loggedIn?: boolean; authMethod?: string } = {};
    try {
      status = JSON.parse(run.output.slice(run.output.indexOf("{"))) as typeof status;
    } catch {
      // not JSON: judged by the exit code alone
    }
    if (run.exitCode === 0 && status.loggedIn !== false) {
      return {
        state: "ready",
        fingerprint: login.fingerprint,
        result: { ...base, status: "passed", message: `claude auth status passed for volume ${volume.name} (${status.authMethod ?? login.kind})` },
      };
    }
    const said = status.loggedIn === false ? `not logged in, auth method ${status.authMethod ?? "none"}` : redactText(oneLine(run.output || run.error || "", 120));
    return {
      state: run.exitCode === 124 ? "unavailable" : "unauthenticated",
      fingerprint: login.fingerprint,
      result: { ...base, status: "failed", message: `claude auth status failed for volume ${volume.name} (${said}): ${this.remedy(volume)}` },
    };
  }

  async prepareVolume(): Promise<void> {}

  async prepareHome(volume: LoginVolume, runDir: string): Promise<PrivateHome> {
    const login = await this.loginEnv(volume);
    return seedHome(
      volume,
      join(runDir, "claude-home"),
      {
        copy: [CLAUDE_FILES.credentials, "settings.json", "CLAUDE.md"],
        credential: { file: CLAUDE_FILES.credentials, validate: isUsableClaudeCredentials },
        env: (home) => ({ CLAUDE_CONFIG_DIR: home, HOME: home, ...login.env }),
      },
      this.settings.writer,
    );
  }

  /**
   * Sessions are filed under `projects/<the cwd, every character but [a-zA-Z0-9] as '-'>/<id>.jsonl`
   * (docs/runtimes.md, "Follow-ups"); `--resume` by id looks only under the current checkout's, and
   * a follow-up's checkout is elsewhere, so it is given the restored file's path, which it takes too.
   */
  readonly sessions: SessionSupport = {
    collect: async (homeDir, id, cwd) => {
      const dirs = (await listAgentDir(homeDir, "projects")).filter((d) => d.isDirectory());
      const files = await readSessionFiles(homeDir, dirs.map((d) => join("projects", d.name, `${id}.jsonl`)));
      return files ? { runtime: this.runtime, id, cwd, files } : undefined;
    },
    restore: async (homeDir, session) => {
      await writeSessionFiles(homeDir, session.files);
      const transcript = session.files.find((f) => f.path.endsWith(`/${session.id}.jsonl`)) ?? session.files[0]!;
      return join(homeDir, transcript.path);
    },
  };

  invocation(job: JobRequest, ws: WorkspacePaths, home: PrivateHome, resume?: { session: string }): AgentInvocation {
    const s = this.settings;
    const model = job.task.runtime?.model ?? s.model;
    const effort = job.task.runtime?.effort;
    const args = [
      "--print",
      "--output-format",
      "stream-json",
      "--verbose",
      "--permission-mode",
      s.permissionMode,
      // The session is kept (in the private home) for a follow-up to continue: --no-session-persistence would drop it.
      ...(resume ? ["--resume", resume.session] : []),
      ...(model ? ["--model", model] : []),
      ...(effort && CLAUDE_EFFORTS.has(effort) ? ["--effort", effort] : []),
      ...(s.maxTurns ? ["--max-turns", String(s.maxTurns)] : []),
      ...(s.allowedTools.length > 0 ? ["--allowedTools", ...s.allowedTools] : []),
      "--",
      buildPrompt(job),
    ];
    const env = {
      ...this.baseEnv(home.dir),
      ...home.env,
      CLAUDE_CODE_MAX_RETRIES: String(s.maxRetries),
      ...(s.baseUrl ? { ANTHROPIC_BASE_URL: s.baseUrl } : {}),
    };
    return { bin: this.bin, args, env, cwd: ws.repoDir };
  }

  createParser(): (line: string) => OutputEvent[] {
    return (line) => this.parseLine(line);
  }

  parseLine(line: string): OutputEvent[] {
    let m: ClaudeMessage;
    try {
      m = JSON.parse(line) as ClaudeMessage;
    } catch {
      return [];
    }
    if (m.type === "assistant") {
      const out: OutputEvent[] = [];
      for (const block of m.message?.content ?? []) {
        if (block.type === "text" && block.text) out.push(m.error ? { kind: "error", text: `${m.error}: ${block.text}` } : { kind: "message", text: block.text });
        if (block.type === "tool_use") out.push({ kind: "progress", text: `${block.name ?? "tool"} ${oneLine(describeInput(block.input), 200)}` });
      }
      return out;
    }
    if (m.type === "system" && m.subtype === "init" && typeof m.session_id === "string") return [{ kind: "session", id: m.session_id }];
    if (m.type === "system" && m.subtype === "api_retry") {
      return [{ kind: "progress", text: `retrying the model request (${m.error ?? m.error_status ?? "error"}, attempt ${m.attempt ?? "?"})` }];
    }
    if (m.type === "result") {
      if (m.is_error) {
        const why = m.result ?? m.errors?.join("; ") ?? m.subtype ?? "error";
        const status = m.api_error_status ? ` (HTTP ${m.api_error_status})` : "";
        return [...claudeUsage(m), { kind: "error", text: `${why}${status}` }, { kind: "result", ok: false, text: why }];
      }
      return [...claudeUsage(m), ...(m.result ? [{ kind: "message" as const, text: m.result }] : []), { kind: "result", ok: true }];
    }
    return [];
  }

  loginExpired(text: string): boolean {
    return LOGIN_EXPIRED.some((re) => re.test(text));
  }

  usageLimit(line: string, now: Date): UsageLimit | undefined {
    return claudeUsageLimit(line);
  }

  async maxParallel(volume: LoginVolume): Promise<number> {
    const login = await this.loginEnv(volume);
    return login.kind === "credentials-file" ? 1 : this.settings.maxParallel;
  }

  version(): Promise<string | undefined> {
    return cliVersion(this.bin, { ...baseAgentEnv(), DISABLE_AUTOUPDATER: "1" });
  }

  /** Which login the volume holds, and the variables that hand it to the CLI. */
  private async loginEnv(volume: LoginVolume): Promise<{ kind: string; env: Record<string, string>; fingerprint?: string }> {
    const token = (await readIfExists(join(volume.path, CLAUDE_FILES.oauthToken)))?.toString("utf8").trim();
    if (token) return { kind: "oauth-token", env: { CLAUDE_CODE_OAUTH_TOKEN: token }, fingerprint: sha256Hex(Buffer.from(token)) };
    const key = (await readIfExists(join(volume.path, CLAUDE_FILES.apiKey)))?.toString("utf8").trim();
    if (key) return { kind: "api-key", env: { ANTHROPIC_API_KEY: key }, fingerprint: sha256Hex(Buffer.from(key)) };
    const creds = await readIfExists(join(volume.path, CLAUDE_FILES.credentials));
    if (creds) return { kind: "credentials-file", env: {}, fingerprint: sha256Hex(creds) };
    return { kind: (await exists(volume.path)) ? "none" : "no volume", env: {} };
  }

  private baseEnv(home: string): Record<string, string> {
    return {
      ...baseAgentEnv(),
      ...AGENT_GIT_IDENTITY,
      CLAUDE_CONFIG_DIR: home,
      HOME: home,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_AUTOUPDATER: "1",
    };
  }
}

function describeInput(input: unknown): string {
  if (input && typeof input === "object") {
    const i = input as Record<string, unknown>;
    const first = i.command ?? i.file_path ?? i.path ?? i.pattern;
    if (typeof first === "string") return first;
  }
  return JSON.stringify(input ?? "");
}

interface ClaudeMessage {
  type?: string;
  subtype?: string;
  session_id?: unknown;
  error?: string;
  error_status?: number;
  attempt?: number;
  is_error?: boolean;
  result?: string;
  errors?: string[];
  api_error_status?: number | null;
  message?: { content?: Array<{ type?: string; text?: string; name?: string; input?: unknown }> };
  num_turns?: unknown;
  total_cost_usd?: unknown;
  usage?: { input_tokens?: unknown; cache_read_input_tokens?: unknown; cache_creation_input_tokens?: unknown; output_tokens?: unknown };
  modelUsage?: Record<string, unknown>;
}

/** The result's totals: input counts what was sent fresh and what was written to the cache; cached what was read from it. */
function claudeUsage(m: ClaudeMessage): OutputEvent[] {
  if (!m.usage) return [];
  const u = m.usage;
  const models = Object.keys(m.modelUsage ?? {});
  const costUsd = cost(m.total_cost_usd);
  return [{
    kind: "usage",
    usage: {
      inputTokens: count(u.input_tokens) + count(u.cache_creation_input_tokens),
      cachedInputTokens: count(u.cache_read_input_tokens),
      outputTokens: count(u.output_tokens),
      ...(typeof m.num_turns === "number" ? { turns: count(m.num_turns) } : {}),
      ...(models.length > 0 ? { model: models.join(",") } : {}),
      ...(costUsd !== undefined ? { costUsd } : {}),
    },
  }];
}

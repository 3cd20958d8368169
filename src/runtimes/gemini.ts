/**
 * Gemini CLI adapter. The volume is the CLI's home (GEMINI_CLI_HOME): `.gemini/settings.json`
 * names the auth type; `.gemini/oauth_creds.json` holds a Google login, or an `api-key` file a key.
 * The CLI has no offline auth check (every command calls the model), so preflight checks those
 * files and that the binary runs. Runs: `gemini --prompt=… -o stream-json`, trusted workspace,
 * an approval mode for automation, always under a timeout (it retries a dead endpoint for minutes).
 * Even `gemini --version` writes into its home (0.61.0 leaves a `.gemini/projects.json.<uuid>.tmp`
 * per call), so the probes run on a throwaway home: never the login volume, never the worker's own.
 */
import { count } from "./usage.js";
import { geminiUsageLimit } from "./usage-limit.js";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { listAgentDir, readAgentFile } from "./agent-files.js";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { MAX_SESSION_BYTES, readSessionFiles, writeSessionFiles, type SessionSupport } from "./session.js";
import type { JobRequest } from "../schemas/job.js";
import { buildPrompt } from "./prompt.js";
import { AGENT_GIT_IDENTITY, CliAdapterBase, cliVersion, type CliSettings, runCheck } from "./cli-adapter.js";
import { sha256Hex } from "../auth/credential-store.js";
import { readIfExists, seedHome, type CredentialWriter } from "./home.js";
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

export interface GeminiSettings extends CliSettings {
  model?: string | undefined;
  approvalMode: "yolo" | "auto_edit" | "default";
  baseUrl?: string | undefined;
  maxParallel: number;
  writer?: CredentialWriter | undefined;
  checkTimeoutMs?: number;
}

export const GEMINI_FILES = {
  settings: ".gemini/settings.json",
  oauthCreds: ".gemini/oauth_creds.json",
  apiKey: "api-key",
} as const;

/** Settings every run gets on top of the volume's own: no usage statistics, no repo .env. */
export const GEMINI_RUN_SETTINGS = {
  privacy: { usageStatisticsEnabled: false },
  advanced: { ignoreLocalEnv: true },
} as const;

const LOGIN_EXPIRED = [
  /Manual authorization is required/i,
  /Please set an Auth method/i,
  /"code"\s*:\s*401/,
  /UNAUTHENTICATED/,
  /API key not valid/i,
  /invalid_grant/i,
  /Invalid auth method/i,
];

export function isUsableGeminiOauth(bytes: Uint8Array): boolean {
  try {
    const c = JSON.parse(Buffer.from(bytes).toString("utf8")) as { refresh_token?: string; access_token?: string };
    return Boolean(c.refresh_token || c.access_token);
  } catch {
    return false;
  }
}

type Json = Record<string, unknown>;

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b) ? deepMerge(b as Json, v as Json) : v;
  }
  return out;
}

export class GeminiAdapter extends CliAdapterBase<GeminiSettings> implements RuntimeAdapter {
  readonly runtime = "gemini" as const;
  readonly requiresResult = true;

  async check(volume: LoginVolume, signal?: AbortSignal): Promise<AuthCheck> {
    const base = { checkedAt: new Date().toISOString(), volume: volume.name };
    const runs = await withThrowawayHome((home) =>
      runCheck({ bin: this.bin, args: ["--version"], env: this.baseEnv(home), cwd: "/" }, this.settings.checkTimeoutMs ?? 30_000, signal),
    );
    if (runs.exitCode !== 0) {
      return {
        state: "unavailable",
        result: {
          ...base,
          status: "failed",
          message: `gemini CLI at '${this.bin}' does not run (${runs.error ?? `exit ${runs.exitCode}`}): npm install @google/gemini-cli@0.61.0, or set MOONMIND_GEMINI_BIN`,
        },
      };
    }
    const login = await this.login(volume);
    if (login.problem) {
      return {
        state: "unauthenticated",
        fingerprint: login.fingerprint,
        result: { ...base, status: "failed", message: `gemini login check failed for volume ${volume.name} (${login.problem}): ${this.remedy(volume)}` },
      };
    }
    return {
      state: "ready",
      fingerprint: login.fingerprint,
      result: { ...base, status: "passed", message: `gemini login (${login.kind}) present on volume ${volume.name}` },
    };
  }

  async prepareVolume(): Promise<void> {}

  async prepareHome(volume: LoginVolume, runDir: string): Promise<PrivateHome> {
    const key = (await readIfExists(join(volume.path, GEMINI_FILES.apiKey)))?.toString("utf8").trim();
    const tmp = join(runDir, "tmp");
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    const home = await seedHome(
      volume,
      join(runDir, "gemini-home"),
      {
        copy: [GEMINI_FILES.settings, GEMINI_FILES.oauthCreds, ".gemini/google_accounts.json", ".gemini/GEMINI.md"],
        credential: { file: GEMINI_FILES.oauthCreds, validate: isUsableGeminiOauth },
        env: (dir) => ({
          GEMINI_CLI_HOME: dir,
          HOME: dir,
          TMPDIR: tmp,
          ...(key ? { GEMINI_API_KEY: key } : {}),
        }),
      },
      this.settings.writer,
    );
    const settingsPath = join(home.dir, GEMINI_FILES.settings);
    let own: Json = {};
    try {
      own = JSON.parse((await readIfExists(settingsPath))?.toString("utf8") ?? "{}") as Json;
    } catch {
      own = {};
    }
    await mkdir(join(home.dir, ".gemini"), { recursive: true, mode: 0o700 });
    await writeFile(settingsPath, JSON.stringify(deepMerge(own, GEMINI_RUN_SETTINGS as unknown as Json), null, 2), { mode: 0o600 });
    return home;
  }

  /**
   * Sessions are `.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`, the first line naming
   * the session; `--resume <id>` looks in the current checkout's project folder, and one named
   * `tmp/<sha256 of the checkout path>` is taken into it (docs/runtimes.md, "Follow-ups"), so the
   * restored transcript goes there, without the old projects.json and .project_root.
   */
  readonly sessions: SessionSupport = {
    collect: async (homeDir, id, cwd) => {
      let best: { path: string; size: number } | undefined;
      for (const project of await listAgentDir(homeDir, join(".gemini", "tmp"))) {
        if (!project.isDirectory()) continue;
        const chats = join(".gemini", "tmp", project.name, "chats");
        for (const entry of await listAgentDir(homeDir, chats)) {
          if (!entry.isFile() || !/^session-.*\.jsonl$/.test(entry.name) || !entry.name.includes(id.slice(0, 8))) continue;
          const path = join(chats, entry.name);
          const file = await readAgentFile(homeDir, path, MAX_SESSION_BYTES);
          if (file.kind !== "file") continue;
          const newline = file.data.indexOf(10);
          const first = file.data.subarray(0, newline < 0 ? file.data.length : newline).toString("utf8");
          // Each resume also writes a stub under the same id (its start-up context only): the transcript is the largest.
          if (sessionIdOf(first) === id && (!best || file.data.length > best.size)) best = { path, size: file.data.length };
        }
      }
      const files = best ? await readSessionFiles(homeDir, [best.path]) : undefined;
      return files ? { runtime: this.runtime, id, cwd, files } : undefined;
    },
    restore: async (homeDir, session, cwd) => {
      const project = createHash("sha256").update(cwd).digest("hex");
      await writeSessionFiles(homeDir, session.files, (path) => join(".gemini", "tmp", project, "chats", basename(path)));
      return session.id;
    },
  };

  invocation(job: JobRequest, ws: WorkspacePaths, home: PrivateHome, resume?: { session: string }): AgentInvocation {
    const model = job.task.runtime?.model ?? this.settings.model;
    const args = [
      // `--prompt=` keeps a prompt that starts with '-' from being read as an option.
      `--prompt=${buildPrompt(job)}`,
      "--output-format",
      "stream-json",
      "--approval-mode",
      this.settings.approvalMode,
      "--skip-trust",
      ...(model ? ["--model", model] : []),
      ...(resume ? ["--resume", resume.session] : []),
    ];
    const env = {
      ...this.baseEnv(home.dir),
      ...home.env,
      ...(this.settings.baseUrl ? { GOOGLE_GEMINI_BASE_URL: this.settings.baseUrl } : {}),
    };
    return { bin: this.bin, args, env, cwd: ws.repoDir };
  }

  /** The reply streams in chunks (`delta: true`): each run's parser joins its own. */
  createParser(): (line: string) => OutputEvent[] {
    let reply = "";
    return (line) => {
      let e: GeminiEvent;
      try {
        e = JSON.parse(line) as GeminiEvent;
      } catch {
        return [];
      }
      if (e.type === "init" && typeof e.session_id === "string") return [{ kind: "session", id: e.session_id }];
      if (e.type === "message") {
        if (e.role !== "assistant" || typeof e.content !== "string") return [];
        reply = e.delta ? reply + e.content : e.content;
        return [{ kind: "message", text: reply }];
      }
      return geminiEvent(e);
    };
  }

  loginExpired(text: string): boolean {
    return LOGIN_EXPIRED.some((re) => re.test(text));
  }

  usageLimit(line: string, now: Date): UsageLimit | undefined {
    return geminiUsageLimit(line, now);
  }

  async maxParallel(): Promise<number> {
    return this.settings.maxParallel;
  }

  version(): Promise<string | undefined> {
    return withThrowawayHome((home) => cliVersion(this.bin, { ...baseAgentEnv(), GEMINI_CLI_HOME: home, HOME: home, GEMINI_CLI_NO_RELAUNCH: "true" }));
  }

  private async login(volume: LoginVolume): Promise<{ kind?: string; problem?: string; fingerprint?: string }> {
    const raw = await readIfExists(join(volume.path, GEMINI_FILES.settings));
    if (!raw) return { problem: `no ${GEMINI_FILES.settings}` };
    let type: string | undefined;
    try {
      const s = JSON.parse(raw.toString("utf8")) as { security?: { auth?: { selectedType?: string } } };
      type = s.security?.auth?.selectedType;
    } catch {
      return { problem: `${GEMINI_FILES.settings} is not valid JSON` };
    }
    if (!type) return { problem: `${GEMINI_FILES.settings} names no security.auth.selectedType` };
    if (type === "oauth-personal") {
      const creds = await readIfExists(join(volume.path, GEMINI_FILES.oauthCreds));
      if (!creds || !isUsableGeminiOauth(creds)) return { problem: `oauth-personal without a usable ${GEMINI_FILES.oauthCreds}` };
      return { kind: type, fingerprint: sha256Hex(creds) };
    }
    if (type === "gemini-api-key") {
      const key = await readIfExists(join(volume.path, GEMINI_FILES.apiKey));
      if (!key || key.toString("utf8").trim() === "") return { problem: `gemini-api-key without an ${GEMINI_FILES.apiKey} file` };
      return { kind: type, fingerprint: sha256Hex(key) };
    }
    return { kind: type, fingerprint: sha256Hex(raw) };
  }

  private baseEnv(home: string): Record<string, string> {
    return {
      ...baseAgentEnv(),
      ...AGENT_GIT_IDENTITY,
      GEMINI_CLI_HOME: home,
      HOME: home,
      GEMINI_CLI_NO_RELAUNCH: "true",
      GEMINI_CLI_TRUST_WORKSPACE: "true",
    };
  }
}

/** The `sessionId` a transcript's first line names. */
function sessionIdOf(line: string): string | undefined {
  try {
    const id = (JSON.parse(line) as { sessionId?: unknown }).sessionId;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `fn` with an empty home of its own, removed afterwards with whatever the CLI left in it. */
async function withThrowawayHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), "moonmind-gemini-probe-"));
  try {
    return await fn(home);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

interface GeminiEvent {
  type?: string;
  session_id?: unknown;
  role?: string;
  content?: string;
  delta?: boolean;
  tool_name?: string;
  parameters?: unknown;
  status?: string;
  output?: string;
  severity?: string;
  message?: string;
  error?: { type?: string; message?: string };
  stats?: { input_tokens?: unknown; output_tokens?: unknown; cached?: unknown; tool_calls?: unknown; models?: Record<string, unknown> };
}

/** The result's stats: `input_tokens` is the whole prompt, `cached` the part of it read from the cache. */
function geminiUsage(e: GeminiEvent): OutputEvent[] {
  if (!e.stats) return [];
  const cached = count(e.stats.cached);
  const models = Object.keys(e.stats.models ?? {});
  return [{
    kind: "usage",
    usage: {
      inputTokens: Math.max(count(e.stats.input_tokens) - cached, 0),
      cachedInputTokens: cached,
      outputTokens: count(e.stats.output_tokens),
      ...(models.length > 0 ? { model: models.join(",") } : {}),
    },
  }];
}

function geminiEvent(e: GeminiEvent): OutputEvent[] {
  switch (e.type) {
    case "tool_use":
      return [{ kind: "progress", text: `${e.tool_name ?? "tool"} ${JSON.stringify(e.parameters ?? {}).slice(0, 200)}` }];
    case "tool_result":
      return e.status === "error" ? [{ kind: "progress", text: `tool failed: ${e.error?.message ?? e.output ?? "error"}` }] : [];
    case "error":
      return [{ kind: e.severity === "warning" ? "progress" : "error", text: e.message ?? "error" }];
    case "result":
      if (e.status === "success") return [...geminiUsage(e), { kind: "result", ok: true }];
      return [
        ...geminiUsage(e),
        { kind: "error", text: e.error?.message ?? "gemini turn failed" },
        { kind: "result", ok: false, text: e.error?.message },
      ];
    default:
      return [];
  }
}

/**
 * Codex CLI adapter. Preflight: `codex login status` (offline; it never refreshes, and says
 * "Logged in" even when the ChatGPT tokens are dead, so a job's own 401 also counts as evidence).
 * Runs: `codex exec` with approval_policy="never", a sandbox mode, JSONL events, stdin closed and
 * the final message written to a file, in a private CODEX_HOME seeded from the volume.
 */
import { count } from "./usage.js";
import { codexUsageLimit } from "./usage-limit.js";
import { mkdir, writeFile } from "node:fs/promises";
import { walkAgentFiles } from "./agent-files.js";
import { readSessionFiles, writeSessionFiles, type SessionSupport } from "./session.js";
import { join } from "node:path";
import type { JobRequest } from "../schemas/job.js";
import { redactText } from "../secrets.js";
import { buildPrompt } from "./prompt.js";
import { AGENT_GIT_IDENTITY, CliAdapterBase, cliVersion, type CliSettings, oneLine, runCheck } from "./cli-adapter.js";
import { isValidCodexAuth, tryParseCodexAuth } from "../auth/codex-credentials.js";
import { sha256Hex } from "../auth/credential-store.js";
import { readIfExists, seedHome, type CredentialWriter } from "./home.js";
import { mergeTopLevelToml } from "./toml.js";
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

export interface CodexSettings extends CliSettings {
  sandbox: "read-only" | "workspace-write" | "danger-full-access";
  model?: string | undefined;
  /** Set by the operator: wins over the defaults below. */
  maxParallel?: number | undefined;
  /** The broker's URL for a volume's refreshes; undefined = no broker (one run per ChatGPT login). */
  brokerUrl?: ((volume: LoginVolume) => string | undefined) | undefined;
  /** The vendor's token endpoint, used directly when no broker runs. */
  refreshUrl: string;
  writer?: CredentialWriter | undefined;
  checkTimeoutMs?: number;
}

/** Output that means the login is dead, whatever `login status` says. */
const LOGIN_EXPIRED = [
  /refresh token (?:was )?already (?:been )?used/i,
  /access token could not be refreshed/i,
  /invalid_grant/i,
  /refresh_token_reused/i,
  /\b401 Unauthorized\b/i,
  /Please log out and sign in again/i,
  /Not logged in/i,
];

const DEFAULT_MAX_PARALLEL = 4;

/** Keys the runtime guarantees in the volume's config.toml; everything else stays the user's. */
export const CODEX_CONFIG_TEMPLATE = { approval_policy: '"never"' } as const;

/** A usable auth.json: an API key, or a complete ChatGPT login (as the broker's store judges it). */
export function isUsableCodexAuth(bytes: Uint8Array): boolean {
  if (isValidCodexAuth(bytes)) return true;
  try {
    const key = (JSON.parse(Buffer.from(bytes).toString("utf8")) as { OPENAI_API_KEY?: unknown }).OPENAI_API_KEY;
    return typeof key === "string" && key.length > 0;
  } catch {
    return false;
  }
}

export class CodexAdapter extends CliAdapterBase<CodexSettings> implements RuntimeAdapter {
  readonly runtime = "codex" as const;
  readonly requiresResult = false;

  async check(volume: LoginVolume, signal?: AbortSignal): Promise<AuthCheck> {
    const checkedAt = () => new Date().toISOString();
    const run = await runCheck(
      { bin: this.bin, args: ["login", "status"], env: this.baseEnv(volume.path), cwd: "/" },
      this.settings.checkTimeoutMs ?? 30_000,
      signal,
    );
    const auth = await readIfExists(join(volume.path, "auth.json"));
    const fingerprint = auth ? sha256Hex(auth) : undefined;
    if (run.missing || (run.error && run.exitCode === 127)) {
      return {
        state: "unavailable",
        fingerprint,
        result: {
          status: "failed",
          checkedAt: checkedAt(),
          volume: volume.name,
          message: `codex CLI not found at '${this.bin}': npm install @openai/codex@0.169.0, or set MOONMIND_CODEX_BIN`,
        },
      };
    }
    if (run.exitCode === 0) {
      return {
        state: "ready",
        fingerprint,
        result: { status: "passed", checkedAt: checkedAt(), volume: volume.name, message: `codex login status passed for volume ${volume.name}` },
      };
    }
    // codex prefixes its answer with warnings (e.g. about a CODEX_HOME under /tmp): keep the answer.
    const answer = run.output.split("\n").filter((l) => l.trim() && !/^WARNING:/.test(l)).join(" ");
    const said = redactText(oneLine(answer || run.error || "", 160));
    return {
      state: run.exitCode === 124 ? "unavailable" : "unauthenticated",
      fingerprint,
      result: {
        status: "failed",
        checkedAt: checkedAt(),
        volume: volume.name,
        message: `codex login status failed for volume ${volume.name}${said ? ` (${said})` : ""}: ${this.remedy(volume)}`,
      },
    };
  }

  /** Guarantees approval_policy = "never" in the volume's config.toml without touching the rest. */
  async prepareVolume(volume: LoginVolume): Promise<void> {
    const path = join(volume.path, "config.toml");
    const before = (await readIfExists(path))?.toString("utf8") ?? "";
    const after = mergeTopLevelToml(before, CODEX_CONFIG_TEMPLATE);
    if (after !== before) await writeFile(path, after, { mode: 0o600 });
  }

  async prepareHome(volume: LoginVolume, runDir: string): Promise<PrivateHome> {
    // Refreshes go through the broker; without one, straight to the configured token endpoint.
    const refresh = this.settings.brokerUrl?.(volume) ?? this.settings.refreshUrl;
    // A temp dir of the run's own: where bubblewrap is installed, codex 0.169 sets its sandbox
    // helper up under TMPDIR and its workspace-write sandbox fails when that is the shared /tmp.
    const tmp = join(runDir, "tmp");
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    return seedHome(
      volume,
      join(runDir, "codex-home"),
      {
        copy: ["auth.json", "config.toml", "AGENTS.md", "instructions.md"],
        credential: { file: "auth.json", validate: isUsableCodexAuth },
        env: (home) => ({ CODEX_HOME: home, HOME: home, TMPDIR: tmp, CODEX_REFRESH_TOKEN_URL_OVERRIDE: refresh }),
      },
      this.settings.writer,
    );
  }

  /**
   * A session is `sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl` in CODEX_HOME, its id the
   * `thread.started` event's; `exec resume <id>` finds the restored file wherever the checkout is
   * (docs/runtimes.md, "Follow-ups").
   */
  readonly sessions: SessionSupport = {
    collect: async (homeDir, id, cwd) => {
      // sessions/YYYY/MM/DD/: three levels, walked without following a link.
      const mine = (await walkAgentFiles(homeDir, "sessions", 3)).filter((n) => n.endsWith(`-${id}.jsonl`));
      const files = await readSessionFiles(homeDir, mine);
      return files ? { runtime: this.runtime, id, cwd, files } : undefined;
    },
    restore: async (homeDir, session) => {
      await writeSessionFiles(homeDir, session.files);
      return session.id;
    },
  };

  invocation(job: JobRequest, ws: WorkspacePaths, home: PrivateHome, resume?: { session: string }): AgentInvocation {
    const lastMessageFile = join(ws.outDir, "last-message.md");
    const model = job.task.runtime?.model ?? this.settings.model;
    const effort = job.task.runtime?.effort;
    const args = [
      "exec",
      // `exec resume` takes neither --sandbox nor --cd: the sandbox goes as config, the checkout is the cwd.
      ...(resume ? ["resume"] : []),
      "--json",
      "--skip-git-repo-check",
      "-c",
      'approval_policy="never"',
      // Commands the model runs get a minimal environment, not the CLI's (which names its home).
      "-c",
      "shell_environment_policy.inherit=core",
      // Unattended runs phone nowhere: no metrics, no curated-plugin sync (both reach outside hosts).
      "-c",
      "analytics.enabled=false",
      "-c",
      "features.plugins=false",
      ...(resume ? ["-c", `sandbox_mode=${JSON.stringify(this.settings.sandbox)}`] : ["--sandbox", this.settings.sandbox, "--cd", ws.repoDir]),
      "--output-last-message",
      lastMessageFile,
      ...(model ? ["--model", model] : []),
      ...(effort ? ["-c", `model_reasoning_effort=${JSON.stringify(effort)}`] : []),
      ...(resume ? [resume.session] : []),
      "--",
      buildPrompt(job),
    ];
    return { bin: this.bin, args, env: { ...this.baseEnv(home.dir), ...home.env }, cwd: ws.repoDir, lastMessageFile };
  }

  createParser(): (line: string) => OutputEvent[] {
    return (line) => this.parseLine(line);
  }

  parseLine(line: string): OutputEvent[] {
    let event: CodexEvent;
    try {
      event = JSON.parse(line) as CodexEvent;
    } catch {
      return [];
    }
    switch (event.type) {
      case "item.completed": {
        const item = event.item ?? {};
        if (item.type === "agent_message" && item.text) return [{ kind: "message", text: item.text }];
        if (item.type === "command_execution" && item.command) {
          const exit = item.exit_code === undefined || item.exit_code === null ? "" : ` (exit ${item.exit_code})`;
          return [{ kind: "progress", text: `ran ${item.command}${exit}` }];
        }
        if (item.type === "file_change" && item.changes) {
          return [{ kind: "progress", text: `changed ${item.changes.map((c) => c.path).join(", ")}` }];
        }
        // An error item is a warning; the turn goes on.
        if (item.type === "error" && item.message) return [{ kind: "progress", text: `warning: ${item.message}` }];
        return [];
      }
      case "thread.started":
        return typeof event.thread_id === "string" ? [{ kind: "session", id: event.thread_id }] : [];
      case "turn.completed": {
        const u = event.usage;
        // An empty usage object (seen from endpoints that report none) is no report.
        const usage: OutputEvent[] = u && (typeof u.input_tokens === "number" || typeof u.output_tokens === "number")
          ? [{ kind: "usage", usage: { inputTokens: count(u.input_tokens), cachedInputTokens: count(u.cached_input_tokens), outputTokens: count(u.output_tokens), turns: 1 } }]
          : [];
        return [...usage, { kind: "result", ok: true }];
      }
      case "turn.failed": {
        const text = event.error?.message ?? "turn failed";
        return [{ kind: "error", text }, { kind: "result", ok: false, text }];
      }
      case "error":
        // Retry notices ("Reconnecting... 2/5") share the type with fatal errors.
        if (/^Reconnecting/i.test(event.message ?? "")) return [{ kind: "progress", text: event.message! }];
        return [{ kind: "error", text: event.message ?? "error" }];
      default:
        return [];
    }
  }

  loginExpired(text: string): boolean {
    return LOGIN_EXPIRED.some((re) => re.test(text));
  }

  usageLimit(line: string, now: Date): UsageLimit | undefined {
    return codexUsageLimit(line, now);
  }

  /**
   * Default 4 runs per login; a rotating ChatGPT login without the broker is safe for one run at
   * a time only. An operator's MOONMIND_CODEX_MAX_PARALLEL wins over both.
   */
  async maxParallel(volume: LoginVolume): Promise<number> {
    if (this.settings.maxParallel !== undefined) return this.settings.maxParallel;
    const auth = await readIfExists(join(volume.path, "auth.json"));
    const chatgpt = auth !== undefined && tryParseCodexAuth(auth) !== undefined;
    return chatgpt && !this.settings.brokerUrl?.(volume) ? 1 : DEFAULT_MAX_PARALLEL;
  }

  version(): Promise<string | undefined> {
    return cliVersion(this.bin, baseAgentEnv());
  }

  private baseEnv(home: string): Record<string, string> {
    return { ...baseAgentEnv(), ...AGENT_GIT_IDENTITY, CODEX_HOME: home, HOME: home };
  }
}

interface CodexEvent {
  type?: string;
  thread_id?: unknown;
  message?: string;
  usage?: { input_tokens?: unknown; cached_input_tokens?: unknown; output_tokens?: unknown };
  error?: { message?: string };
  item?: {
    type?: string;
    text?: string;
    command?: string;
    exit_code?: number | null;
    message?: string;
    changes?: Array<{ path: string }>;
  };
}

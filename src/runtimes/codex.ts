/**
 * Codex CLI adapter: `codex login status` as preflight, `codex exec` unattended.
 * Flags verified against the pinned CLI (see docs and tests/e2e): approval_policy="never" and a
 * sandbox mode are always given, output is JSONL (--json), the final message goes to a file.
 */
import { join } from "node:path";
import type { JobRequest } from "../schemas/job.js";
import type { PreflightResult } from "../schemas/run.js";
import { runProcess } from "./process.js";
import { baseAgentEnv, type AgentInvocation, type OutputEvent, type RuntimeAdapter, type WorkspacePaths } from "./types.js";
import { buildPrompt } from "./prompt.js";

export interface CodexSettings {
  bin: string;
  volumeName: string;
  volumePath: string;
  sandbox: "read-only" | "workspace-write" | "danger-full-access";
  model?: string | undefined;
  preflightTimeoutMs?: number;
}

/** Output that means the ChatGPT login is dead, whatever `login status` says. */
const LOGIN_EXPIRED = [
  /refresh token (?:was )?already (?:been )?used/i,
  /access token could not be refreshed/i,
  /invalid_grant/i,
  /\b401 Unauthorized\b/i,
  /Please log out and sign in again/i,
  /not logged in/i,
];

export class CodexAdapter implements RuntimeAdapter {
  readonly runtime = "codex" as const;
  readonly volume: { name: string; path: string };

  constructor(private readonly settings: CodexSettings) {
    this.volume = { name: settings.volumeName, path: settings.volumePath };
  }

  remedy(): string {
    return `run tools/auth-codex-volume.sh to log in on volume ${this.volume.name}`;
  }

  async preflight(signal?: AbortSignal): Promise<PreflightResult> {
    const lines: string[] = [];
    const result = await runProcess(
      { bin: this.settings.bin, args: ["login", "status"], env: this.env(), cwd: this.volume.path },
      {
        ...(signal ? { signal } : {}),
        timeoutMs: this.settings.preflightTimeoutMs ?? 30_000,
        killGraceMs: 1_000,
        onLine: (line) => lines.push(line),
      },
    );
    const checkedAt = new Date().toISOString();
    const volume = this.volume.name;
    if (result.spawnError) {
      return {
        status: "failed",
        checkedAt,
        volume,
        message: `codex CLI not found at '${this.settings.bin}' (${result.spawnError.message}): install @openai/codex or set MOONMIND_CODEX_BIN`,
      };
    }
    if (result.exitCode === 0) {
      return { status: "passed", checkedAt, volume, message: `codex login status passed for volume ${volume}` };
    }
    const said = lines.join(" ").trim().slice(0, 200);
    return {
      status: "failed",
      checkedAt,
      volume,
      message: `codex login status failed for volume ${volume}${said ? ` (${said})` : ""}: ${this.remedy()}`,
    };
  }

  invocation(job: JobRequest, ws: WorkspacePaths): AgentInvocation {
    const lastMessageFile = join(ws.outDir, "last-message.md");
    const model = job.task.runtime?.model ?? this.settings.model;
    const effort = job.task.runtime?.effort;
    const args = [
      "exec",
      "--json",
      "--skip-git-repo-check",
      "-c",
      'approval_policy="never"',
      // Commands the model runs get a minimal environment, not the CLI's (which names CODEX_HOME).
      "-c",
      "shell_environment_policy.inherit=core",
      "--sandbox",
      this.settings.sandbox,
      "--cd",
      ws.repoDir,
      "--output-last-message",
      lastMessageFile,
      ...(model ? ["--model", model] : []),
      ...(effort ? ["-c", `model_reasoning_effort=${JSON.stringify(effort)}`] : []),
      "--",
      buildPrompt(job),
    ];
    return { bin: this.settings.bin, args, env: this.env(), cwd: ws.repoDir, lastMessageFile };
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
          return [{ kind: "progress", text: `ran ${item.command}${item.exit_code !== undefined ? ` (exit ${item.exit_code})` : ""}` }];
        }
        if (item.type === "file_change" && item.changes) {
          return [{ kind: "progress", text: `changed ${item.changes.map((c) => c.path).join(", ")}` }];
        }
        // An error item is a warning; the turn goes on.
        if (item.type === "error" && item.message) return [{ kind: "progress", text: `warning: ${item.message}` }];
        return [];
      }
      case "turn.failed":
        return [{ kind: "error", text: event.error?.message ?? "turn failed" }];
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

  private env(): Record<string, string> {
    return { ...baseAgentEnv(), CODEX_HOME: this.volume.path };
  }
}

interface CodexEvent {
  type?: string;
  message?: string;
  error?: { message?: string };
  item?: {
    type?: string;
    text?: string;
    command?: string;
    exit_code?: number;
    message?: string;
    changes?: Array<{ path: string }>;
  };
}

/** Builds the adapter for a runtime from the configuration. */
import type { Config } from "../config.js";
import type { Runtime } from "../schemas/runtime.js";
import { resolveBinary } from "./binary.js";
import { ClaudeAdapter } from "./claude.js";
import { CodexAdapter } from "./codex.js";
import { GeminiAdapter } from "./gemini.js";
import type { CredentialWriter } from "./home.js";
import type { LoginVolume, RuntimeAdapter } from "./types.js";

export interface AdapterDeps {
  /** Writes rotated credentials back to a volume under its lock; absent: never written back. */
  writer?: CredentialWriter;
  /** The token broker's URL for a codex volume, when the broker runs. */
  codexBroker?: (volume: LoginVolume) => string | undefined;
}

export function createAdapter(runtime: Runtime, config: Config, deps: AdapterDeps = {}): RuntimeAdapter {
  const env = config.env;
  switch (runtime) {
    case "codex":
      return new CodexAdapter({
        bin: resolveBinary("codex", env.MOONMIND_CODEX_BIN),
        volumeName: env.CODEX_VOLUME_NAME,
        volumePath: env.CODEX_VOLUME_PATH,
        sandbox: env.MOONMIND_CODEX_SANDBOX,
        model: env.MOONMIND_CODEX_MODEL,
        maxParallel: env.MOONMIND_CODEX_MAX_PARALLEL,
        brokerUrl: deps.codexBroker,
        refreshUrl: env.MOONMIND_CODEX_REFRESH_URL,
        writer: deps.writer,
      });
    case "claude":
      return new ClaudeAdapter({
        bin: resolveBinary("claude", env.MOONMIND_CLAUDE_BIN),
        volumeName: env.CLAUDE_VOLUME_NAME,
        volumePath: env.CLAUDE_VOLUME_PATH,
        model: env.MOONMIND_CLAUDE_MODEL,
        permissionMode: env.MOONMIND_CLAUDE_PERMISSION_MODE,
        allowedTools: env.MOONMIND_CLAUDE_ALLOWED_TOOLS.split(/[\s,]+/).filter(Boolean),
        maxRetries: env.MOONMIND_CLAUDE_MAX_RETRIES,
        maxTurns: env.MOONMIND_CLAUDE_MAX_TURNS,
        baseUrl: env.MOONMIND_CLAUDE_BASE_URL,
        maxParallel: env.MOONMIND_CLAUDE_MAX_PARALLEL,
        writer: deps.writer,
      });
    case "gemini":
      return new GeminiAdapter({
        bin: resolveBinary("gemini", env.MOONMIND_GEMINI_BIN),
        volumeName: env.GEMINI_VOLUME_NAME,
        volumePath: env.GEMINI_HOME,
        model: env.MOONMIND_GEMINI_MODEL,
        approvalMode: env.MOONMIND_GEMINI_APPROVAL_MODE,
        baseUrl: env.MOONMIND_GEMINI_BASE_URL,
        maxParallel: env.MOONMIND_GEMINI_MAX_PARALLEL,
        writer: deps.writer,
      });
  }
}

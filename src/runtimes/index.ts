/** Builds the adapter for a runtime from the configuration. */
import type { Config } from "../config.js";
import { ConfigError } from "../errors.js";
import type { Runtime } from "../schemas/runtime.js";
import { CodexAdapter } from "./codex.js";
import type { RuntimeAdapter } from "./types.js";

export function createAdapter(runtime: Runtime, config: Config): RuntimeAdapter {
  const env = config.env;
  switch (runtime) {
    case "codex":
      return new CodexAdapter({
        bin: env.MOONMIND_CODEX_BIN,
        volumeName: env.CODEX_VOLUME_NAME,
        volumePath: env.CODEX_VOLUME_PATH,
        sandbox: env.MOONMIND_CODEX_SANDBOX,
        model: env.MOONMIND_CODEX_MODEL,
      });
    default:
      throw new ConfigError(`the ${runtime} runtime is not available in this build`, {
        remedy: "serve only codex for now: MOONMIND_WORKER_RUNTIMES=codex",
      });
  }
}

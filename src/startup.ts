/**
 * Start-up checks every worker runs besides its logins: settings that must be present together.
 * Returns problems, each naming the fix; the worker decides (strict: exit 78, else start paused).
 */
import type { Config } from "./config.js";

export function startupProblems(config: Config): string[] {
  const env = config.env;
  const problems: string[] = [];
  if (env.DEFAULT_EMBEDDING_PROVIDER?.toLowerCase() === "google" && !env.GOOGLE_API_KEY && !env.GEMINI_API_KEY) {
    problems.push(
      "DEFAULT_EMBEDDING_PROVIDER=google needs GOOGLE_API_KEY or GEMINI_API_KEY: set one in the worker's environment, or choose another provider",
    );
  }
  return problems;
}

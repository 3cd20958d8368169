/** The one interface every agent CLI adapter implements. */
import type { JobRequest } from "../schemas/job.js";
import type { PreflightResult } from "../schemas/run.js";
import type { Runtime } from "../schemas/runtime.js";

export interface AgentInvocation {
  bin: string;
  args: string[];
  /** The complete environment of the CLI: nothing of the worker's leaks in beyond this. */
  env: Record<string, string>;
  cwd: string;
  /** Where the CLI writes its final message, when it has such an option. */
  lastMessageFile?: string;
}

/** What one line of the CLI's machine output means to us. */
export type OutputEvent =
  | { kind: "progress"; text: string }
  | { kind: "message"; text: string }
  | { kind: "error"; text: string };

export interface WorkspacePaths {
  repoDir: string;
  outDir: string;
}

export interface RuntimeAdapter {
  readonly runtime: Runtime;
  /** The login volume: its name for messages, its path on this machine. */
  readonly volume: { name: string; path: string };
  /** Checks the login without a prompt and without calling the model. */
  preflight(signal?: AbortSignal): Promise<PreflightResult>;
  invocation(job: JobRequest, ws: WorkspacePaths): AgentInvocation;
  parseLine(line: string): OutputEvent[];
  /** True when this output shows the login expired or was revoked (the job is requeued, the runtime re-checked). */
  loginExpired(text: string): boolean;
}

/** Variables passed through to every agent CLI; everything else of the worker's environment stays behind. */
export const PASSTHROUGH_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "TMPDIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NODE_EXTRA_CA_CERTS",
] as const;

export function baseAgentEnv(source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSTHROUGH_ENV) {
    const value = source[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

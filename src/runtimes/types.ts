/** The one interface every agent CLI adapter implements. */
import type { JobRequest } from "../schemas/job.js";
import type { PreflightResult, RunUsage } from "../schemas/run.js";
import type { Runtime } from "../schemas/runtime.js";
import type { SessionSupport } from "./session.js";

export interface AgentInvocation {
  bin: string;
  args: string[];
  /** The complete environment of the CLI: nothing of the worker's leaks in beyond this. */
  env: Record<string, string>;
  cwd: string;
  /** Where the CLI writes its final message, when it has such an option. */
  lastMessageFile?: string;
  /** Run as this user (set by the worker when it runs as root and MOONMIND_AGENT_USER is set). */
  user?: { uid: number; gid: number };
}

/** What one line of the CLI's machine output means to us. */
export type OutputEvent =
  | { kind: "progress"; text: string }
  | { kind: "message"; text: string }
  | { kind: "error"; text: string }
  /** The CLI's own verdict on the turn, where its output has one. */
  | { kind: "result"; ok: boolean; text?: string | undefined }
  /** What the CLI reported using (several are summed: one per codex turn). */
  | { kind: "usage"; usage: RunUsage }
  /** The CLI's id for this conversation, which a follow-up resumes. */
  | { kind: "session"; id: string };

export interface WorkspacePaths {
  repoDir: string;
  outDir: string;
}

/** A login volume: its name for messages, its path on this machine. */
export interface LoginVolume {
  name: string;
  path: string;
}

export const AUTH_STATES = ["ready", "unauthenticated", "unavailable"] as const;
export type AuthState = (typeof AUTH_STATES)[number];

export interface AuthCheck {
  state: AuthState;
  result: PreflightResult;
  /** Digest of the login's credentials, so a re-check can tell whether anything changed. */
  fingerprint?: string | undefined;
}

/** The private home one run works in, seeded from the volume. */
export interface PrivateHome {
  dir: string;
  /** Variables that point the CLI at this home and its login. */
  env: Record<string, string>;
  /** The login's credentials file in this home, when the login is one (a follow-up's session must not hold what it says). */
  credentialFile?: string | undefined;
  /** Writes credentials the CLI rotated during the run back to the volume, by compare-and-set. */
  writeBack(): Promise<WriteBackResult>;
}
export type WriteBackResult = "written" | "unchanged" | "stale" | "invalid";

export interface UsageLimit {
  /** When the limit resets, if the CLI said. */
  resetsAt?: Date | undefined;
  /** The CLI's own words (or the error type), short and redacted by the caller. */
  evidence: string;
}

export interface RuntimeAdapter {
  readonly runtime: Runtime;
  readonly bin: string;
  /** The login volume serving a shard (`{shard}` in a volume path gives each shard its own). */
  volumeFor(shard: number): LoginVolume;
  /** Checks the login without a prompt and without calling the model. */
  check(volume: LoginVolume, signal?: AbortSignal): Promise<AuthCheck>;
  /** Start-up preparation of a volume (codex merges its config template). */
  prepareVolume(volume: LoginVolume): Promise<void>;
  prepareHome(volume: LoginVolume, runDir: string): Promise<PrivateHome>;
  /** The CLI's command line; with `resume`, one that continues that earlier session (restored in `home`: `session` is what `sessions.restore` returned). */
  invocation(job: JobRequest, ws: WorkspacePaths, home: PrivateHome, resume?: { session: string }): AgentInvocation;
  /** How this CLI keeps and continues a session; absent where it cannot (a follow-up then starts afresh on the result). */
  readonly sessions?: SessionSupport | undefined;
  /** A parser for one run's machine output (it may keep state across lines, e.g. streamed text). */
  createParser(): (line: string) => OutputEvent[];
  /** True when this output shows the login expired or was revoked. */
  loginExpired(text: string): boolean;
  /**
   * The plan's usage limit (or a rate limit the CLI gave up on), when this line of output shows
   * one — a class of its own, neither an expired login nor a failure — with its reset time when
   * the CLI gives one (src/runtimes/usage-limit.ts, measured in docs/runtimes.md).
   */
  usageLimit(line: string, now: Date): UsageLimit | undefined;
  /** Success needs the CLI's own `result` event, not only exit code 0 (a killed gemini exits 0). */
  readonly requiresResult: boolean;
  /** How many runs one login may serve at once. */
  maxParallel(volume: LoginVolume): Promise<number>;
  version(): Promise<string | undefined>;
  remedy(volume: LoginVolume): string;
}

/** Variables passed through to every agent CLI; everything else of the worker's environment stays behind. */
export const PASSTHROUGH_ENV = [
  "PATH",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
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

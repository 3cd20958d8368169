/**
 * Every setting comes from the environment, parsed here once with zod. A bad value stops
 * start-up with one message listing every bad variable. `.env-template` lists exactly the
 * variables in SETTINGS (a unit test holds the two together).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { ConfigError } from "./errors.js";
import { RUNTIMES, RuntimeSchema, type Runtime } from "./schemas/runtime.js";

const bool = z.stringbool({ truthy: ["true", "1", "yes", "on"], falsy: ["false", "0", "no", "off", ""] });
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z.string().trim().optional().transform((v) => (v === "" ? undefined : v));

/** name → [schema, description]. Defaults live in the schemas. */
export const SETTINGS = {
  NATS_URL: [optionalString, "NATS server(s), comma-separated. Unset: `moonmind dev` starts a local nats-server."],
  NATS_CREDS: [optionalString, "Path of a NATS credentials (.creds) file for the runtime's own connection."],
  MOONMIND_CONNECT_WAIT_MS: [int(0, 86_400_000).default(60_000), "How long an actor waits at start for an unreachable NATS server before it exits 78."],
  NATS_SERVER_BIN: [optionalString, "nats-server binary for `moonmind dev` and the tests (default: .tools/, then PATH)."],
  MOONMIND_FROM_SOURCE: [bool.default(false), "Run the TypeScript sources even when a current dist/ build exists (bin.mjs reads it)."],
  MOONMIND_LOG_LEVEL: [z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"), "pino log level."],
  MOONMIND_DATA_DIR: [z.string().default("./var"), "Where `moonmind dev` keeps the NATS store, workspaces and auth volumes."],
  MOONMIND_DEFAULT_TASK_RUNTIME: [RuntimeSchema.default("codex"), "Runtime for jobs that name none."],
  MOONMIND_CODEX_SHARDS: [int(1, 64).default(3), "Shard count for codex jobs (1-64)."],
  MOONMIND_CLAUDE_SHARDS: [int(1, 64).default(1), "Shard count for claude jobs (1-64)."],
  MOONMIND_GEMINI_SHARDS: [int(1, 64).default(1), "Shard count for gemini jobs (1-64)."],
  MOONMIND_STREAM_REPLICAS: [int(1, 5).default(1), "JetStream replicas for streams and buckets (3 on a cluster)."],
  MOONMIND_ACK_WAIT_MS: [int(2_000, 3_600_000).default(30_000), "Ack wait of job consumers; running jobs keep it alive."],
  MOONMIND_MAX_DELIVER: [int(2, 1_000).default(20), "Deliveries of one job message before it is dead-lettered."],
  MOONMIND_MAX_PAYLOAD_BYTES: [int(1_024, 1_048_576).default(65_536), "Largest job request accepted on jobs.submit."],
  MOONMIND_INTAKE_INFLIGHT: [int(1, 4_096).default(64), "Submissions one intake replica handles at once (one at a time per job id)."],
  MOONMIND_DUPLICATE_WINDOW_MS: [int(600_000, 86_400_000).default(1_200_000), "JOBS dedupe window for Nats-Msg-Id (>= 10 min)."],
  MOONMIND_WORKER_ID: [optionalString, "Worker id (letters, digits, '-', '_'). Default: host-pid-random."],
  MOONMIND_WORKER_RUNTIMES: [z.string().default("codex"), "Runtimes this worker serves, comma-separated."],
  MOONMIND_WORKER_SHARDS: [optionalString, "Shards to bind: '0,2' for every runtime or 'codex:0,codex:1,claude:0'. Default: all."],
  MOONMIND_WORKER_CONCURRENCY: [int(1, 256).default(1), "Jobs one worker runs at once."],
  MOONMIND_HEARTBEAT_MS: [int(200, 60_000).default(5_000), "Worker heartbeat period."],
  MOONMIND_WORKER_TTL_MS: [int(1_000, 600_000).default(15_000), "A worker silent this long is considered gone."],
  MOONMIND_PULL_EXPIRES_MS: [int(1_000, 60_000).default(1_000), "Long-poll of one pull request on a shard consumer."],
  MOONMIND_JOB_TIMEOUT_MS: [int(1_000, 86_400_000).default(3_600_000), "Longest a job's agent may run."],
  MOONMIND_KILL_GRACE_MS: [int(0, 600_000).default(10_000), "SIGTERM to SIGKILL grace for an agent process."],
  MOONMIND_STOP_GRACE_MS: [int(0, 3_600_000).default(30_000), "On shutdown, how long running jobs may finish before they are handed back."],
  MOONMIND_RETRY_BACKOFF_MS: [int(0, 3_600_000).default(5_000), "First retry delay; doubles per attempt."],
  MOONMIND_RETRY_BACKOFF_MAX_MS: [int(0, 86_400_000).default(300_000), "Largest retry delay."],
  MOONMIND_LOG_BATCH_MS: [int(10, 60_000).default(250), "Agent output is flushed to logs.jobs.<id> at least this often."],
  MOONMIND_LOG_BATCH_LINES: [int(1, 10_000).default(100), "…or when this many lines are waiting."],
  MOONMIND_WORKDIR: [optionalString, "Parent directory of job workspaces (default: <data dir>/workspaces)."],
  MOONMIND_KEEP_WORKSPACES: [bool.default(false), "Keep each job's workspace after it finishes."],
  MOONMIND_VIZ_HOST: [z.string().trim().min(1).default("127.0.0.1"), "Address the live view (`moonmind viz`) listens on; it can cancel jobs, so loopback unless you mean it."],
  MOONMIND_VIZ_PORT: [int(0, 65_535).default(4280), "Port of the live view (0: any free one)."],
  MOONMIND_VIZ_HISTORY_MS: [int(0, 604_800_000).default(86_400_000), "How far back the live view replays machine transitions from STATUS."],
  MOONMIND_VIZ_MAX_JOBS: [int(10, 100_000).default(500), "Most recent jobs the live view follows."],
  MOONMIND_GIT_AUTHOR_NAME: [z.string().trim().min(1).default("MoonMind Runtime"), "Author and committer of the branches `publish: branch` jobs push."],
  MOONMIND_GIT_AUTHOR_EMAIL: [z.string().trim().min(3).default("moonmind@localhost"), "Their email."],
  MOONMIND_GIT_PUSH_TOKEN: [optionalString, "Token the worker pushes published branches with (https; user x-access-token), through a git credential helper. Never the agent's."],
  MOONMIND_GIT_PUSH_TOKEN_FILE: [optionalString, "A file holding that token (first line), read at each push; used when MOONMIND_GIT_PUSH_TOKEN is unset."],
  MOONMIND_FORGE_API_URL: [z.url().default("https://api.github.com"), "REST API `publish: pr` jobs open pull requests through (GitHub's; GitHub Enterprise: https://<host>/api/v3)."],
  MOONMIND_GIT_BASE_URL: [z.url().default("https://github.com"), "Base URL that 'owner/name' repositories resolve against."],
  MOONMIND_ALLOW_LOCAL_REPOS: [bool.default(false), "Accept local paths and file:// repositories (development and tests)."],
  MOONMIND_STARTUP_STRICT: [bool.default(true), "A worker whose runtime is not logged in exits 78 at start (false: it starts paused)."],
  MOONMIND_AUTH_TTL_MS: [int(1_000, 86_400_000).default(300_000), "How long a passed login check is trusted before it is re-run."],
  MOONMIND_USAGE_LIMIT_BACKOFF_MS: [int(1_000, 86_400_000).default(900_000), "How long a login at its plan's usage limit waits when the CLI gives no reset time."],
  MOONMIND_TOKEN_BROKER: [bool.default(true), "Route codex token refreshes through the worker's single-flight broker."],
  MOONMIND_AGENT_USER: [optionalString, "Run agent CLIs as this user (name or uid) when the worker runs as root."],
  MOONMIND_AGENT_SANDBOX: [z.enum(["auto", "bwrap", "none"]).default("auto"), "Agent isolation: bwrap (its own PID namespace, only its workspace writable), auto (bwrap where it works), none."],
  MOONMIND_CODEX_BIN: [optionalString, "Codex CLI binary (default: codex on PATH, else the pinned package)."],
  MOONMIND_CODEX_MODEL: [optionalString, "Model for codex jobs that name none."],
  MOONMIND_CODEX_SANDBOX: [z.enum(["read-only", "workspace-write", "danger-full-access"]).default("workspace-write"), "codex exec --sandbox mode."],
  MOONMIND_CODEX_MAX_PARALLEL: [int(1, 256).optional(), "Concurrent codex runs per login (default 4; 1 for a ChatGPT login when the broker is off)."],
  MOONMIND_CODEX_REFRESH_URL: [z.url().default("https://auth.openai.com/oauth/token"), "Token endpoint the broker forwards codex refreshes to."],
  CODEX_VOLUME_NAME: [z.string().default("codex_auth_volume"), "Name of the codex login volume (messages; may contain {shard})."],
  CODEX_VOLUME_PATH: [z.string().default("/var/lib/codex-auth"), "Where the codex login volume is mounted (CODEX_HOME; may contain {shard})."],
  MOONMIND_CLAUDE_BIN: [optionalString, "Claude Code binary (default: claude on PATH, else the pinned package)."],
  MOONMIND_CLAUDE_MODEL: [optionalString, "Model for claude jobs that name none."],
  MOONMIND_CLAUDE_PERMISSION_MODE: [z.enum(["acceptEdits", "dontAsk", "default", "plan"]).default("acceptEdits"), "claude --permission-mode."],
  MOONMIND_CLAUDE_ALLOWED_TOOLS: [z.string().default("Bash Edit Write Read Glob Grep"), "claude --allowedTools, space-separated."],
  MOONMIND_CLAUDE_MAX_RETRIES: [int(0, 10).default(2), "API retries per request (the CLI's own default, 10, can take minutes on a dead login)."],
  MOONMIND_CLAUDE_MAX_TURNS: [int(1, 1_000).optional(), "claude --max-turns (unset: the CLI's default)."],
  MOONMIND_CLAUDE_BASE_URL: [optionalString, "ANTHROPIC_BASE_URL for claude (a gateway, or a local scripted model)."],
  MOONMIND_CLAUDE_MAX_PARALLEL: [int(1, 256).default(4), "Concurrent claude runs per login (a rotating .credentials.json login always gets 1)."],
  CLAUDE_VOLUME_NAME: [z.string().default("claude_auth_volume"), "Name of the claude login volume (may contain {shard})."],
  CLAUDE_VOLUME_PATH: [z.string().default("/var/lib/claude-auth"), "Where the claude login volume is mounted (CLAUDE_CONFIG_DIR; may contain {shard})."],
  MOONMIND_GEMINI_BIN: [optionalString, "Gemini CLI binary (default: gemini on PATH, else the pinned package)."],
  MOONMIND_GEMINI_MODEL: [optionalString, "Model for gemini jobs that name none (naming one also skips the CLI's model router)."],
  MOONMIND_GEMINI_APPROVAL_MODE: [z.enum(["yolo", "auto_edit", "default"]).default("yolo"), "gemini --approval-mode (only yolo keeps the shell tool)."],
  MOONMIND_GEMINI_BASE_URL: [optionalString, "GOOGLE_GEMINI_BASE_URL for gemini (a gateway, or a local scripted model)."],
  MOONMIND_GEMINI_MAX_PARALLEL: [int(1, 256).default(4), "Concurrent gemini runs per login."],
  GEMINI_VOLUME_NAME: [z.string().default("gemini_auth_volume"), "Name of the gemini login volume (may contain {shard})."],
  GEMINI_HOME: [z.string().default("/var/lib/gemini-auth"), "Where the gemini login volume is mounted (the CLI's home; may contain {shard})."],
  DEFAULT_EMBEDDING_PROVIDER: [optionalString, "Embedding provider; 'google' makes start-up require GOOGLE_API_KEY or GEMINI_API_KEY."],
  GOOGLE_API_KEY: [optionalString, "Only checked for presence when DEFAULT_EMBEDDING_PROVIDER=google; never logged or passed to agents."],
  GEMINI_API_KEY: [optionalString, "Only checked for presence when DEFAULT_EMBEDDING_PROVIDER=google; never logged or passed to agents."],
} as const satisfies Record<string, readonly [z.ZodType, string]>;

type Settings = typeof SETTINGS;
export type Env = { [K in keyof Settings]: z.output<Settings[K][0]> };

export interface ShardBinding {
  runtime: Runtime;
  shard: number;
}

export interface Config {
  env: Env;
  shardCounts: Record<Runtime, number>;
  workerId: string;
  workerRuntimes: Runtime[];
  /** Every (runtime, shard) consumer this worker binds. */
  workerShards: ShardBinding[];
  workdir: string;
}

export function defaultWorkerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 40) || "worker";
  return `${host}-${process.pid}-${randomBytes(2).toString("hex")}`;
}

/** Parses the environment; throws ConfigError naming every bad variable at once. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [name, [schema]] of Object.entries(SETTINGS)) {
    const parsed = (schema as z.ZodType).safeParse(source[name]);
    if (parsed.success) values[name] = parsed.data;
    else problems.push(`${name}=${JSON.stringify(source[name] ?? "")}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  }
  const env = values as Env;
  const count = (n: unknown) => (typeof n === "number" ? n : 1);
  const shardCounts: Record<Runtime, number> = {
    codex: count(env.MOONMIND_CODEX_SHARDS),
    claude: count(env.MOONMIND_CLAUDE_SHARDS),
    gemini: count(env.MOONMIND_GEMINI_SHARDS),
  };

  const workerRuntimes = parseRuntimeList(env.MOONMIND_WORKER_RUNTIMES ?? "codex", problems);
  const workerShards = parseShardList(env.MOONMIND_WORKER_SHARDS, workerRuntimes, shardCounts, problems);
  const workerId = env.MOONMIND_WORKER_ID ?? defaultWorkerId();
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(workerId)) {
    problems.push(`MOONMIND_WORKER_ID=${JSON.stringify(workerId)}: use only letters, digits, '-' and '_'`);
  }
  if (env.MOONMIND_RETRY_BACKOFF_MAX_MS < env.MOONMIND_RETRY_BACKOFF_MS) {
    problems.push("MOONMIND_RETRY_BACKOFF_MAX_MS: must not be smaller than MOONMIND_RETRY_BACKOFF_MS");
  }
  if (problems.length > 0) throw configError(problems);
  return {
    env,
    shardCounts,
    workerId,
    workerRuntimes,
    workerShards,
    workdir: env.MOONMIND_WORKDIR ?? `${env.MOONMIND_DATA_DIR}/workspaces`,
  };
}

function configError(problems: string[]): ConfigError {
  return new ConfigError(
    `invalid configuration (${problems.length} variable${problems.length === 1 ? "" : "s"}):\n  ` +
      problems.join("\n  "),
    { remedy: "fix these environment variables (see .env-template and the README's configuration table)" },
  );
}

function parseRuntimeList(raw: string, problems: string[]): Runtime[] {
  const names = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(RUNTIMES as readonly string[]).includes(n));
  if (names.length === 0 || bad.length > 0) {
    problems.push(`MOONMIND_WORKER_RUNTIMES=${JSON.stringify(raw)}: expected a comma-separated list of ${RUNTIMES.join(", ")}`);
    return [];
  }
  return [...new Set(names as Runtime[])];
}

function parseShardList(
  raw: string | undefined,
  runtimes: Runtime[],
  counts: Record<Runtime, number>,
  problems: string[],
): ShardBinding[] {
  const all = runtimes.flatMap((runtime) => Array.from({ length: counts[runtime] }, (_, shard) => ({ runtime, shard })));
  if (raw === undefined) return all;
  const out = new Map<string, ShardBinding>();
  for (const part of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(?:([a-z]+):)?(\d+)(?:-(\d+))?$/.exec(part);
    const runtime = m?.[1] as Runtime | undefined;
    if (!m || (runtime !== undefined && !runtimes.includes(runtime))) {
      problems.push(
        `MOONMIND_WORKER_SHARDS: '${part}' is not '<n>', '<a>-<b>' or '<runtime>:<n>' for a runtime in MOONMIND_WORKER_RUNTIMES`,
      );
      continue;
    }
    const from = Number(m[2]);
    const to = m[3] === undefined ? from : Number(m[3]);
    for (const rt of runtime ? [runtime] : runtimes) {
      for (let shard = from; shard <= to; shard++) {
        if (shard >= counts[rt]) {
          problems.push(`MOONMIND_WORKER_SHARDS: ${rt} shard ${shard} does not exist (it has ${counts[rt]} shards)`);
          continue;
        }
        out.set(`${rt}:${shard}`, { runtime: rt, shard });
      }
    }
  }
  return [...out.values()];
}

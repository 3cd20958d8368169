/**
 * What CLI commands share: the configuration, a NATS connection when a command needs one (found
 * from any subdirectory of the project), the terminal (colour, spinner), and requests to the
 * `moonmind-ops` service with its errors turned into CLI errors.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import type { z } from "zod";
import { loadConfig, type Config } from "../config.js";
import { EXIT_CODES, MoonmindError, UsageError } from "../errors.js";
import { permissionViolation } from "../nats/errors.js";
import { callOps } from "../ops/client.js";
import { DEV_URL_FILE, resolveNatsUrl } from "../nats/url.js";
import { isProjectRoot } from "../paths.js";
import type { RunRecord } from "../schemas/run.js";
import { IdSchema } from "../schemas/runtime.js";
import { BUCKETS, OPS } from "../subjects.js";
import { detectTerminal, startProgress, type Terminal } from "./table.js";

export interface CliContext {
  config: Config;
  terminal: Terminal;
  connect(): Promise<NatsConnection>;
  out(line: string): void;
  err(line: string): void;
}

export function cliContext(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): CliContext {
  const config = loadConfig(env);
  const terminal = detectTerminal(env);
  return {
    config,
    terminal,
    async connect() {
      const { url } = findNatsUrl(config, cwd);
      const { connectNats } = await import("../nats/connect.js"); // loaded only by verbs that talk to NATS
      return connectNats({ servers: url, name: "moonmind-cli", credsFile: config.env.NATS_CREDS, timeoutMs: 5_000 });
    },
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
  };
}

/**
 * NATS_URL, else the `nats.url` a running `moonmind dev` wrote in its data dir — looked for in
 * the working directory and then in each parent up to the project's root (the directory whose
 * package.json is this project's) — else what src/nats/url.ts falls back to.
 */
export function findNatsUrl(config: Config, cwd: string): { url: string; source: string } {
  if (config.env.NATS_URL) return { url: config.env.NATS_URL, source: "NATS_URL" };
  const dataDir = config.env.MOONMIND_DATA_DIR.trim() || "./var";
  if (!isAbsolute(dataDir)) {
    for (let dir = resolve(cwd); ; dir = dirname(dir)) {
      const file = join(dir, dataDir, DEV_URL_FILE);
      if (existsSync(file)) {
        const url = readFileSync(file, "utf8").trim();
        if (url) return { url, source: file };
      }
      if (isProjectRoot(dir) || dirname(dir) === dir) break;
    }
  }
  return resolveNatsUrl(config);
}


/** A job id from the command line: a malformed one is a usage error, not a raw "illegal subject". */
export function parseJobId(id: string, what = "job id"): string {
  const parsed = IdSchema.safeParse(id);
  if (!parsed.success) {
    throw new UsageError(`'${id}' is not a valid ${what}: ${parsed.error.issues[0]?.message ?? "malformed"}`);
  }
  return parsed.data;
}

/** A positive integer option (e.g. --limit, --shard). */
export function parseIntOption(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer ≥ ${min} (got '${value}')`);
  return n;
}

/** The ops service answered with a service error, or did not answer. */
export class OpsError extends MoonmindError {
  override name = "OpsError";
  readonly exitCode: number;
  constructor(
    message: string,
    readonly code: number | undefined,
    options: { cause?: unknown; remedy?: string } = {},
  ) {
    super(message, options);
    // A request the service calls bad is the caller's usage error; everything else (not found, conflict, down) is 1.
    this.exitCode = code === 400 ? EXIT_CODES.usage : EXIT_CODES.failure;
  }
}

export interface OpsRequestOptions {
  timeoutMs?: number;
  /** Spinner text while waiting (stderr, TTY only). */
  progress?: string;
}

/** One request to the `moonmind-ops` service, its reply validated by `schema`. */
export async function opsRequest<S extends z.ZodType>(
  ctx: CliContext,
  nc: NatsConnection,
  subject: string,
  body: unknown,
  schema: S,
  opts: OpsRequestOptions = {},
): Promise<z.infer<S>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const progress = startProgress(ctx.terminal, opts.progress ?? `asking ${subject}`);
  const call = await callOps(nc, subject, body, timeoutMs).finally(() => progress.stop());
  if (!call.ok) {
    switch (call.why) {
      case "no-responders":
        throw new OpsError(`no ops service answered on ${subject}: start the stack (npm start) or \`moonmind ops\``, 503, { cause: call.cause });
      case "timeout":
        throw new OpsError(`the ops service did not answer ${subject} within ${timeoutMs / 1000} s`, undefined, {
          cause: call.cause,
          remedy: "check it runs (`nats micro ls`), or try again",
        });
      case "forbidden":
        throw new OpsError(`this NATS login may not ask ${subject} (its role's permissions in nats.conf)`, 403, {
          cause: call.cause,
          remedy: "run it under a login whose role allows it, e.g. the operator's: NATS_URL=nats://operator:<password>@<host>:4222",
        });
      case "service":
        throw new OpsError(call.description.startsWith(subject) ? call.description : `${subject}: ${call.description}`, call.code);
      case "not-json":
        throw new OpsError(`${subject} answered with something that is not JSON`, undefined, { cause: call.cause });
      case "transport":
        throw new OpsError(`request to ${subject} failed: ${(call.cause as Error).message}`, undefined, { cause: call.cause });
    }
  }
  const data = call.data;
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new OpsError(`${subject} answered with an unexpected reply: ${parsed.error.issues[0]?.message ?? "invalid"}`, undefined, {
      remedy: "the CLI and the ops service may be of different versions",
    });
  }
  return parsed.data;
}

/** Connects, runs `fn`, and always drains the connection. */
export async function withNats<T>(ctx: CliContext, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await ctx.connect();
  try {
    return await fn(nc);
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

/**
 * The run record of `jobId`; undefined when there is none (or it does not parse). Read from KV
 * runs, or, under a login that may not read the bucket (nats.conf's submitter), from ops.runs.get.
 */
export async function readRunRecord(nc: NatsConnection, jobId: string): Promise<RunRecord | undefined> {
  const [{ Kvm }, { RunRecordSchema }] = await Promise.all([import("@nats-io/kv"), import("../schemas/run.js")]);
  let entry;
  try {
    entry = await (await new Kvm(nc).open(BUCKETS.runs)).get(jobId);
  } catch (err) {
    if (!permissionViolation(err)) throw err;
    return readRunRecordThroughOps(nc, jobId);
  }
  if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
  const parsed = RunRecordSchema.safeParse(entry.json());
  return parsed.success ? parsed.data : undefined;
}

async function readRunRecordThroughOps(nc: NatsConnection, jobId: string): Promise<RunRecord | undefined> {
  const { RunsGetReplySchema } = await import("../schemas/ops.js");
  const reply = await nc.request(OPS.runsGet, JSON.stringify({ runId: jobId }), { timeout: 10_000 });
  const code = reply.headers?.get("Nats-Service-Error-Code") ?? "";
  if (code === "404") return undefined;
  if (code !== "") throw new OpsError(`${OPS.runsGet}: ${reply.headers?.get("Nats-Service-Error") ?? `error ${code}`}`, Number(code) || 500);
  const parsed = RunsGetReplySchema.safeParse(reply.json());
  return parsed.success ? parsed.data.record : undefined;
}

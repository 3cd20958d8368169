/**
 * The `moonmind-ops` service (`ops.*` endpoints): request and reply bodies. Requests are strict
 * (an unknown field is a 400); an empty body is `{}`. Every failure is a service error
 * (`Nats-Service-Error-Code` 400 | 404 | 409 | 500 | 503 with a readable description) — see
 * OpsErrorSchema for what a caller reads from the headers.
 */
import { z } from "zod";
import { DeadLetterSchema, JobEventSchema, WorkerRecordSchema } from "./events.js";
import { PreflightStatusSchema, RunRecordSchema, RunStateSchema } from "./run.js";
import { IdSchema, RuntimeSchema } from "./runtime.js";

/** Codes the ops service answers with (in the Nats-Service-Error-Code header). */
export const OPS_ERROR_CODES = {
  badRequest: 400,
  notFound: 404,
  conflict: 409,
  internal: 500,
  unavailable: 503,
} as const;
export type OpsErrorCode = (typeof OPS_ERROR_CODES)[keyof typeof OPS_ERROR_CODES];

/** A service error as a client sees it (headers Nats-Service-Error-Code / Nats-Service-Error). */
export const OpsErrorSchema = z.object({ code: z.number().int(), description: z.string() });
export type OpsError = z.infer<typeof OpsErrorSchema>;

// ---------- ops.shards ----------
export const ShardsRequestSchema = z.strictObject({ runtime: RuntimeSchema.optional() });
export type ShardsRequest = z.infer<typeof ShardsRequestSchema>;

export const AuthSummarySchema = z.object({
  state: z.string(),
  status: z.string(),
  message: z.string(),
  checkedAt: z.string(),
});

export const BoundWorkerSchema = z.object({
  workerId: z.string(),
  /** The worker's own state (`running`, `paused`, `draining`, …). */
  state: z.string(),
  /** The login (`<runtime>:<volume>`) that serves this shard on that worker. */
  login: z.string().optional(),
  /** That login's auth state and last preflight; absent when the worker reports none. */
  auth: AuthSummarySchema.optional(),
  /** Whether this worker pulls from the shard now (its login is `ready` and it is not draining). */
  ready: z.boolean(),
  heartbeatAt: z.string(),
});
export type BoundWorker = z.infer<typeof BoundWorkerSchema>;

export const ShardHealthSchema = z.object({
  runtime: RuntimeSchema,
  shard: z.number().int(),
  subject: z.string(),
  consumer: z.string(),
  /** Messages not yet delivered (num_pending); undefined when the consumer does not exist. */
  pending: z.number().int(),
  /** Delivered, not yet acked (num_ack_pending): running or about to. */
  ackPending: z.number().int(),
  redelivered: z.number().int(),
  /**
   * Runs whose record says queued on this shard (from ops' follow of KV runs): the pending ones
   * and those handed back (a drain, an expired login, a retry's backoff). Absent when unknown.
   */
  queued: z.number().int().optional(),
  /** The login volume's name for this shard ({shard} expanded). */
  volumeName: z.string(),
  workers: z.array(BoundWorkerSchema),
  /** Age in ms of the oldest message not yet acked; absent when none waits. */
  oldestWaitingMs: z.number().int().optional(),
  latestRun: z.object({ jobId: z.string(), state: RunStateSchema, updatedAt: z.string() }).optional(),
  /** Set when jobs are pending or queued and no bound worker is ready: the remedy. */
  flag: z.string().optional(),
  /** Set when the shard's consumer could not be read. */
  error: z.string().optional(),
});
export type ShardHealth = z.infer<typeof ShardHealthSchema>;

export const ShardsReplySchema = z.object({ at: z.string(), shards: z.array(ShardHealthSchema) });
export type ShardsReply = z.infer<typeof ShardsReplySchema>;

// ---------- ops.workers ----------
/** `all`: also workers whose heartbeat is older than MOONMIND_WORKER_TTL_MS (crashed without deregistering). */
export const WorkersRequestSchema = z.strictObject({ all: z.boolean().optional() });
export type WorkersRequest = z.infer<typeof WorkersRequestSchema>;

export const WorkerSummarySchema = z.object({
  workerId: z.string(),
  state: z.string(),
  runtimes: z.array(RuntimeSchema),
  shards: z.array(z.string()),
  concurrency: z.number().int(),
  auth: WorkerRecordSchema.shape.auth,
  inFlight: z.array(z.string()),
  version: z.string(),
  versions: z.record(z.string(), z.string()),
  startedAt: z.string(),
  heartbeatAt: z.string(),
  uptimeMs: z.number().int(),
  /** Whether the last heartbeat is within MOONMIND_WORKER_TTL_MS. */
  live: z.boolean(),
});
export type WorkerSummary = z.infer<typeof WorkerSummarySchema>;

export const WorkersReplySchema = z.object({ at: z.string(), workers: z.array(WorkerSummarySchema) });
export type WorkersReply = z.infer<typeof WorkersReplySchema>;

// ---------- ops.runs.list / ops.runs.get ----------
export const RunsListRequestSchema = z.strictObject({
  state: RunStateSchema.optional(),
  runtime: RuntimeSchema.optional(),
  repository: z.string().min(1).optional(),
  shard: z.number().int().min(0).optional(),
  limit: z.number().int().min(1).max(1_000).default(50),
});
export type RunsListRequest = z.input<typeof RunsListRequestSchema>;

export const RunSummarySchema = z.object({
  jobId: z.string(),
  state: RunStateSchema,
  runtime: RuntimeSchema,
  repository: z.string(),
  shard: z.number().int(),
  subject: z.string(),
  workerId: z.string().optional(),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  outcome: z.string().optional(),
  waiting: z.string().optional(),
  lastError: z.string().optional(),
});
export type RunSummary = z.infer<typeof RunSummarySchema>;

export const RunsListReplySchema = z.object({ runs: z.array(RunSummarySchema), total: z.number().int() });
export type RunsListReply = z.infer<typeof RunsListReplySchema>;

export const RunIdRequestSchema = z.strictObject({ runId: IdSchema });
/** `states`: also the job machine's `state` frames (the live view's), which the history leaves out otherwise. */
export const RunsGetRequestSchema = RunIdRequestSchema.extend({ states: z.boolean().optional() });
export type RunsGetRequest = z.infer<typeof RunsGetRequestSchema>;

/** One event of the run's history from STATUS, in stream order. */
export const RunEventSchema = z.object({ seq: z.number().int(), subject: z.string(), event: JobEventSchema.or(z.record(z.string(), z.unknown())) });
export const RunsGetReplySchema = z.object({
  record: RunRecordSchema,
  events: z.array(RunEventSchema),
  /** True when the history was cut at the bound (the first events are kept). */
  truncated: z.boolean(),
});
export type RunsGetReply = z.infer<typeof RunsGetReplySchema>;

// ---------- ops.runs.cancel ----------
export const RunsCancelRequestSchema = z.strictObject({ runId: IdSchema, reason: z.string().max(500).optional() });
export type RunsCancelRequest = z.infer<typeof RunsCancelRequestSchema>;
export const RunsCancelReplySchema = z.discriminatedUnion("state", [
  /** It was queued: cancelled now, it never starts. */
  z.object({ runId: z.string(), state: z.literal("cancelled") }),
  /** It runs on `workerId`, which was asked to stop it; `cancelled` follows on its events. */
  z.object({ runId: z.string(), state: z.literal("cancelling"), workerId: z.string() }),
]);
export type RunsCancelReply = z.infer<typeof RunsCancelReplySchema>;

// ---------- ops.runs.retry ----------
export const RunsRetryRequestSchema = RunIdRequestSchema;
export type RunsRetryRequest = z.infer<typeof RunsRetryRequestSchema>;
export const RunsRetryReplySchema = z.object({
  runId: z.string(),
  state: z.literal("queued"),
  /** The attempt number the retry will run as. */
  attempt: z.number().int(),
  subject: z.string(),
});
export type RunsRetryReply = z.infer<typeof RunsRetryReplySchema>;

// ---------- ops.runs.preflight ----------
export const RunsPreflightRequestSchema = z.strictObject({ runId: IdSchema, forceRefresh: z.boolean().optional() });
export type RunsPreflightRequest = z.infer<typeof RunsPreflightRequestSchema>;
export const RunsPreflightReplySchema = z.object({
  runId: z.string(),
  subject: z.string(),
  volumeName: z.string(),
  status: PreflightStatusSchema,
  checkedAt: z.string(),
  message: z.string(),
  /** The worker that ran it; absent when a stored result was reused. */
  workerId: z.string().optional(),
  /** True when a stored result younger than MOONMIND_AUTH_TTL_MS was returned. */
  cached: z.boolean(),
});
export type RunsPreflightReply = z.infer<typeof RunsPreflightReplySchema>;

// ---------- ops.dead.list / ops.dead.replay ----------
export const DeadListRequestSchema = z.strictObject({ limit: z.number().int().min(1).max(1_000).default(50) });
export type DeadListRequest = z.input<typeof DeadListRequestSchema>;
export const DeadEntrySchema = z.object({ seq: z.number().int(), letter: DeadLetterSchema });
export type DeadEntry = z.infer<typeof DeadEntrySchema>;
export const DeadListReplySchema = z.object({ letters: z.array(DeadEntrySchema), total: z.number().int() });
export type DeadListReply = z.infer<typeof DeadListReplySchema>;

/** One of the two: the dead letter's job id (its newest letter) or its DEAD stream sequence. */
export const DeadReplayRequestSchema = z
  .strictObject({ jobId: IdSchema.optional(), seq: z.number().int().min(1).optional() })
  .refine((r) => (r.jobId === undefined) !== (r.seq === undefined), { message: "give exactly one of jobId or seq" });
export type DeadReplayRequest = z.infer<typeof DeadReplayRequestSchema>;
export const DeadReplayReplySchema = z.object({
  letter: DeadEntrySchema,
  /** The id the re-submission carries; follow it with `moonmind watch <newJobId>`. */
  newJobId: z.string(),
});
export type DeadReplayReply = z.infer<typeof DeadReplayReplySchema>;

// ---------- ops.usage ----------
export const USAGE_GROUPINGS = ["login", "runtime", "model", "repository"] as const;
/** `since`: a duration back from now (30m, 24h, 7d) or `all`; runs count by when they last changed. */
export const UsageRequestSchema = z.strictObject({
  since: z.string().regex(/^(\d+(s|m|h|d)|all)$/, "a duration like 30m, 24h, 7d or 'all'").default("24h"),
  by: z.enum(USAGE_GROUPINGS).default("login"),
});
export type UsageRequest = z.input<typeof UsageRequestSchema>;

export const UsageRowSchema = z.object({
  /** The login (`<runtime>:<volume>`), runtime, model or repository. */
  key: z.string(),
  runs: z.number().int(),
  /** Attempts whose agent ran and reported what it used. */
  attempts: z.number().int(),
  inputTokens: z.number().int(),
  cachedInputTokens: z.number().int(),
  outputTokens: z.number().int(),
  /** Summed where the CLI reports a cost (claude); absent when none of the runs did. */
  costUsd: z.number().optional(),
  /** The latest change of a run in this row. */
  lastAt: z.string(),
});
export type UsageRow = z.infer<typeof UsageRowSchema>;
export const UsageReplySchema = z.object({
  since: z.string().optional(),
  by: z.enum(USAGE_GROUPINGS),
  rows: z.array(UsageRowSchema),
  total: UsageRowSchema.omit({ key: true, lastAt: true }),
});
export type UsageReply = z.infer<typeof UsageReplySchema>;

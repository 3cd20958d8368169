/** The run record in KV `runs` (key = job id). Every write is compare-and-set on its revision. */
import { z } from "zod";
import { JobMetaSchema, JobRequestSchema } from "./job.js";
import { IdSchema, RuntimeSchema } from "./runtime.js";

export const RUN_STATES = ["queued", "running", "succeeded", "failed", "cancelled", "dead_letter"] as const;
export const RunStateSchema = z.enum(RUN_STATES);
export type RunState = z.infer<typeof RunStateSchema>;
export const TERMINAL_RUN_STATES: readonly RunState[] = ["succeeded", "failed", "cancelled", "dead_letter"];

export const OUTCOMES = ["NO_CHANGES", "CHANGES_READY", "PUBLISHED_BRANCH", "PUBLISHED_PR", "FAILED", "CANCELLED"] as const;
export const OutcomeSchema = z.enum(OUTCOMES);
export type Outcome = z.infer<typeof OutcomeSchema>;

export const PreflightStatusSchema = z.enum(["passed", "failed", "skipped"]);
export type PreflightStatus = z.infer<typeof PreflightStatusSchema>;

export const PreflightResultSchema = z.object({
  status: PreflightStatusSchema,
  message: z.string(),
  checkedAt: z.string(),
  volume: z.string().optional(),
});
export type PreflightResult = z.infer<typeof PreflightResultSchema>;

export const RunErrorSchema = z.object({ code: z.string(), message: z.string() });

/**
 * What one attempt's agent reported it used: token counts (numbers, never redacted), turns, the
 * model, and the cost where the CLI gives one (claude's total_cost_usd).
 */
export const RunUsageSchema = z.object({
  inputTokens: z.number().int().min(0),
  cachedInputTokens: z.number().int().min(0),
  outputTokens: z.number().int().min(0),
  turns: z.number().int().min(0).optional(),
  model: z.string().optional(),
  costUsd: z.number().min(0).optional(),
});
export type RunUsage = z.infer<typeof RunUsageSchema>;
export type RunError = z.infer<typeof RunErrorSchema>;

export const RunRecordSchema = z.object({
  jobId: IdSchema,
  state: RunStateSchema,
  runtime: RuntimeSchema,
  repository: z.string(),
  shard: z.number().int().min(0),
  subject: z.string(),
  consumer: z.string(),
  workerId: z.string().optional(),
  attempts: z.number().int().min(0),
  maxAttempts: z.number().int().min(1),
  preflight: PreflightResultSchema.optional(),
  diagnostics: z.object({
    queue: z.string(),
    consumer: z.string(),
    pending: z.number().int().optional(),
    /** Which delivery of the shard message this attempt runs on. */
    deliveries: z.number().int().optional(),
    volumeName: z.string().optional(),
    volumePath: z.string().optional(),
  }),
  createdAt: z.string(),
  updatedAt: z.string(),
  claimedAt: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  /**
   * When the current attempt's agent finished its turn, written before its result is collected:
   * a worker taking the run over from a holder that is gone ends it RESULT_LOST rather than run
   * the agent again (src/runs/claim.ts). Dropped when the run goes back to the queue.
   */
  agentFinishedAt: z.string().optional(),
  nextAttemptAt: z.string().optional(),
  /** The commit the current attempt's checkout started at (a follow-up's: the earlier results committed on top). */
  baseCommit: z.string().optional(),
  /**
   * A follow-up's start: the run it continues, what its checkout started from (that run's published
   * branch, its changes on its starting commit, or only that commit), and whether the agent's
   * session went on or why not.
   */
  resumed: z
    .object({
      runId: z.string(),
      from: z.enum(["branch", "patch", "start"]),
      session: z.enum(["continued", "unsupported", "not-saved", "other-runtime"]),
      sessionId: z.string().optional(),
    })
    .optional(),
  result: z
    .object({
      outcome: OutcomeSchema,
      summary: z.string().optional(),
      exitCode: z.number().int().optional(),
      durationMs: z.number().int().optional(),
      error: RunErrorSchema.optional(),
      /** Where a `publish: branch` run put its change: the branch, its commit, the remote it was pushed to. */
      published: z.object({ branch: z.string(), commit: z.string(), remote: z.string(), pullRequest: z.string().optional() }).optional(),
    })
    .optional(),
  lastError: RunErrorSchema.optional(),
  /** Set while no ready worker serves the job's shard: why, since when, and the remedy in `reason`. */
  waiting: z.object({ reason: z.string(), since: z.string() }).optional(),
  artifacts: z.array(z.string()),
  /** Per attempt whose agent ran, what it reported using (ops.usage sums these). */
  usage: z.array(RunUsageSchema.extend({ attempt: z.number().int().min(1) })).optional(),
  /** The job's skill and workflow stage, as on every event. */
  meta: JobMetaSchema.optional(),
  request: JobRequestSchema,
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

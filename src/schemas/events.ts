/**
 * Status events: `status.jobs.<jobId>.<type>` and `status.workers.<workerId>.<type>`.
 * Every event carries `{ type, at, jobId | workerId }`; the rest depends on the type.
 */
import { z } from "zod";
import { JobMetaSchema } from "./job.js";
import { OutcomeSchema, PreflightStatusSchema, RunErrorSchema, RunStateSchema, RunUsageSchema } from "./run.js";
import { RuntimeSchema } from "./runtime.js";

/** The states a run may be queued again from under its own id (`ops.runs.retry`). */
export const RequeueableStateSchema = RunStateSchema.extract(["failed", "cancelled", "dead_letter"]);
export type RequeueableState = z.infer<typeof RequeueableStateSchema>;

const jobBase = { at: z.string(), jobId: z.string(), meta: JobMetaSchema.optional() };
const onWorker = { workerId: z.string(), attempt: z.number().int() };
/**
 * A machine's transition as the live view draws it: the active state ids of the diagram
 * (`job.running.agent`; more than one inside a parallel state) and the event type that caused it.
 */
const machineState = { states: z.array(z.string()).min(1), event: z.string() };

export const JobEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("accepted"), ...jobBase, runtime: RuntimeSchema, repository: z.string() }),
  z.object({ type: z.literal("rejected"), ...jobBase, reason: z.string(), field: z.string().optional() }),
  z.object({
    type: z.literal("routed"),
    ...jobBase,
    runtime: RuntimeSchema,
    shard: z.number().int(),
    subject: z.string(),
    consumer: z.string(),
    key: z.string(),
  }),
  z.object({ type: z.literal("claimed"), ...jobBase, ...onWorker }),
  z.object({
    type: z.literal("preflight"),
    ...jobBase,
    ...onWorker,
    status: PreflightStatusSchema,
    message: z.string(),
  }),
  z.object({ type: z.literal("started"), ...jobBase, ...onWorker, runtime: RuntimeSchema }),
  z.object({ type: z.literal("progress"), ...jobBase, ...onWorker, message: z.string() }),
  z.object({
    type: z.literal("succeeded"),
    ...jobBase,
    ...onWorker,
    outcome: OutcomeSchema,
    summary: z.string().optional(),
    artifacts: z.array(z.string()),
    durationMs: z.number().int(),
    /** What the agent reported using in this attempt. */
    usage: RunUsageSchema.optional(),
  }),
  z.object({
    type: z.literal("failed"),
    ...jobBase,
    workerId: z.string().optional(),
    attempt: z.number().int().optional(),
    state: RunStateSchema,
    error: RunErrorSchema,
    usage: RunUsageSchema.optional(),
  }),
  z.object({ type: z.literal("cancelled"), ...jobBase, workerId: z.string().optional(), reason: z.string() }),
  z.object({
    type: z.literal("retrying"),
    ...jobBase,
    ...onWorker,
    delayMs: z.number().int(),
    error: RunErrorSchema,
  }),
  /** No ready worker serves the job's shard: why, and the remedy. The job goes on by itself once one is. */
  z.object({ type: z.literal("waiting"), ...jobBase, subject: z.string(), reason: z.string() }),
  /**
   * A finished run queued again under its own id (`ops.runs.retry`): not an end, and not a new
   * job (`accepted` is intake's alone). `attempt` is the attempt it will run as.
   */
  z.object({
    type: z.literal("requeued"),
    ...jobBase,
    attempt: z.number().int(),
    previousState: RequeueableStateSchema,
    /** Who queued it again: `ops` is an operator through the ops service. */
    by: z.enum(["ops"]),
    subject: z.string(),
  }),
  /** The job machine entered new states (for the live view): its active state ids and the event that moved it. */
  z.object({ type: z.literal("state"), ...jobBase, ...onWorker, machine: z.literal("job"), ...machineState }),
]);
export type JobEvent = z.infer<typeof JobEventSchema>;
export type JobEventOf<T extends JobEvent["type"]> = Extract<JobEvent, { type: T }>;

const workerBase = { at: z.string(), workerId: z.string() };

export const WorkerEventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("online"),
    ...workerBase,
    runtimes: z.array(RuntimeSchema),
    shards: z.array(z.string()),
    concurrency: z.number().int(),
    version: z.string(),
  }),
  z.object({ type: z.literal("heartbeat"), ...workerBase, inFlight: z.array(z.string()) }),
  z.object({
    type: z.literal("preflight"),
    ...workerBase,
    runtime: RuntimeSchema,
    status: PreflightStatusSchema,
    message: z.string(),
    checkedAt: z.string(),
    volume: z.string().optional(),
  }),
  z.object({ type: z.literal("diagnostics"), ...workerBase, detail: z.record(z.string(), z.unknown()) }),
  z.object({
    type: z.literal("paused"),
    ...workerBase,
    runtime: RuntimeSchema,
    volume: z.string(),
    shards: z.array(z.string()),
    reason: z.string(),
  }),
  z.object({ type: z.literal("resumed"), ...workerBase, runtime: RuntimeSchema, volume: z.string(), shards: z.array(z.string()) }),
  z.object({ type: z.literal("draining"), ...workerBase, inFlight: z.array(z.string()) }),
  z.object({ type: z.literal("offline"), ...workerBase, reason: z.string() }),
  /** The worker machine, or one login's auth machine (`login` = `<runtime>:<volume>`), entered new states. */
  z.object({ type: z.literal("state"), ...workerBase, machine: z.enum(["worker", "auth"]), login: z.string().optional(), ...machineState }),
]);
export type WorkerEvent = z.infer<typeof WorkerEventSchema>;

/**
 * `status.submissions.<id>.<type>`: what happened to a submission judged apart from the job its id
 * names — a rejected body under an existing id, or the same id submitted again.
 */
export const SubmissionEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("rejected"), at: z.string(), jobId: z.string(), reason: z.string(), field: z.string().optional() }),
  z.object({
    type: z.literal("duplicate"),
    at: z.string(),
    jobId: z.string(),
    /** The existing run's state. */
    state: RunStateSchema,
    /** Whether the submitted request equals the stored one (a retried publish) or differs (a clash). */
    sameRequest: z.boolean(),
  }),
]);
export type SubmissionEvent = z.infer<typeof SubmissionEventSchema>;

/** The worker's entry in KV `workers`, refreshed by every heartbeat. */
export const WorkerRecordSchema = z.object({
  workerId: z.string(),
  runtimes: z.array(RuntimeSchema),
  shards: z.array(z.string()),
  concurrency: z.number().int(),
  inFlight: z.array(z.string()),
  state: z.string(),
  /** Auth state per login (`<runtime>:<volume>`). */
  auth: z.record(
    z.string(),
    z.object({ state: z.string(), status: z.string(), message: z.string(), checkedAt: z.string() }),
  ),
  versions: z.record(z.string(), z.string()),
  version: z.string(),
  startedAt: z.string(),
  heartbeatAt: z.string(),
});
export type WorkerRecord = z.infer<typeof WorkerRecordSchema>;

/** What intake copies to `dead.jobs.<id>`. */
export const DeadLetterSchema = z.object({
  jobId: z.string(),
  at: z.string(),
  stage: z.enum(["intake", "worker"]),
  reason: z.string(),
  field: z.string().optional(),
  subject: z.string(),
  /** The original message, secret-looking values redacted, truncated when oversized. */
  original: z.unknown(),
  truncated: z.boolean().optional(),
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

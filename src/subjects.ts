/**
 * The one place where subject, stream, consumer and bucket names are built.
 * Every name here is public API (see the design contract): change it only together
 * with the README, nats.conf, compose file and tests.
 */
import { RUNTIMES, type Runtime } from "./schemas/runtime.js";

export const STREAMS = {
  jobs: "JOBS",
  status: "STATUS",
  logs: "LOGS",
  dead: "DEAD",
} as const;

export const BUCKETS = {
  runs: "runs",
  workers: "workers",
  /** Per-volume locks for credential write-back and token refreshes (short TTL). */
  authLocks: "auth_locks",
} as const;

export const OBJECT_STORES = {
  artifacts: "artifacts",
} as const;

export const SUBJECTS = {
  submit: "jobs.submit",
  /** Every shard subject of every runtime, as captured by the JOBS stream. */
  allShards: "jobs.*.shard.*",
  status: "status.>",
  logs: "logs.jobs.*",
  dead: "dead.jobs.*",
} as const;

export const JOB_EVENTS = [
  "accepted",
  "rejected",
  "routed",
  "claimed",
  "preflight",
  "started",
  "progress",
  "succeeded",
  "failed",
  "cancelled",
  "retrying",
  "waiting",
  "requeued",
  "state",
] as const;
export type JobEventType = (typeof JOB_EVENTS)[number];

export const WORKER_EVENTS = [
  "online",
  "heartbeat",
  "preflight",
  "diagnostics",
  "paused",
  "resumed",
  "draining",
  "offline",
  "state",
] as const;
export type WorkerEventType = (typeof WORKER_EVENTS)[number];

/** The consumer on jobs.submit that the intake replicas share. */
export const INTAKE_CONSUMER = "intake";

export function shardSubject(runtime: Runtime, shard: number): string {
  return `jobs.${runtime}.shard.${shard}`;
}

export function shardConsumer(runtime: Runtime, shard: number): string {
  return `${runtime}-shard-${shard}`;
}

/** Parses `jobs.<runtime>.shard.<n>` back into its parts; undefined for any other subject. */
export function parseShardSubject(subject: string): { runtime: Runtime; shard: number } | undefined {
  const m = /^jobs\.([a-z]+)\.shard\.(\d+)$/.exec(subject);
  if (!m) return undefined;
  const runtime = m[1] as Runtime;
  if (!RUNTIMES.includes(runtime)) return undefined;
  return { runtime, shard: Number(m[2]) };
}

/**
 * Job and worker ids become subject tokens: they must not contain `.`, `*`, `>` or
 * whitespace. The schemas enforce this; the helpers below trust it.
 */
export function jobEventSubject(jobId: string, event: JobEventType): string {
  return `status.jobs.${jobId}.${event}`;
}

/** Subscription filter for one job's events (or every job's with `*`). */
export function jobEventFilter(jobId = "*"): string {
  return `status.jobs.${jobId}.*`;
}

/**
 * A submission judged apart from the job its id names (e.g. a malformed body under the id of a
 * job that exists): reported here, so that job's own history is never touched.
 */
export function submissionEventSubject(jobId: string, event: "rejected" | "duplicate"): string {
  return `status.submissions.${jobId}.${event}`;
}

export function submissionEventFilter(jobId = "*"): string {
  return `status.submissions.${jobId}.*`;
}

export function workerEventSubject(workerId: string, event: WorkerEventType): string {
  return `status.workers.${workerId}.${event}`;
}

export function workerEventFilter(workerId = "*"): string {
  return `status.workers.${workerId}.*`;
}

export function jobLogSubject(jobId: string): string {
  return `logs.jobs.${jobId}`;
}

export function deadSubject(jobId: string): string {
  return `dead.jobs.${jobId}`;
}

export const ARTIFACTS = {
  outputLog: "output.log",
  changesPatch: "changes.patch",
  lastMessage: "last-message.md",
  /** The CLI's session files of a succeeded run, for a follow-up to continue (src/runtimes/session.ts). */
  session: "session.json",
} as const;
export type ArtifactName = (typeof ARTIFACTS)[keyof typeof ARTIFACTS];

export function artifactKey(jobId: string, name: ArtifactName): string {
  return `${jobId}/${name}`;
}

/** JetStream's advisory when a message of `stream` ran out of deliveries on any consumer. */
export function maxDeliveriesAdvisory(stream: string): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`;
}

/** Queue group that shares advisories among intake replicas, so one handles each. */
export const INTAKE_QUEUE = "moonmind-intake";

export const SERVICES = {
  ops: "moonmind-ops",
  worker: "moonmind-worker",
} as const;

/** The queue group every `moonmind-ops` replica joins, so each request is answered once. */
export const OPS_QUEUE = "moonmind-ops";

/** The `moonmind-ops` service's endpoint subjects (request/reply, JSON in and out; see src/schemas/ops.ts). */
export const OPS = {
  shards: "ops.shards",
  workers: "ops.workers",
  runsList: "ops.runs.list",
  runsGet: "ops.runs.get",
  runsCancel: "ops.runs.cancel",
  runsRetry: "ops.runs.retry",
  runsPreflight: "ops.runs.preflight",
  deadList: "ops.dead.list",
  deadReplay: "ops.dead.replay",
  usage: "ops.usage",
} as const;
export type OpsEndpoint = (typeof OPS)[keyof typeof OPS];

/** A worker's control endpoints (`moonmind-worker` service): `worker.<id>.<verb>`. */
export function workerControlSubject(workerId: string, verb: "preflight" | "drain" | "cancel"): string {
  return `worker.${workerId}.${verb}`;
}

/**
 * The `moonmind-ops` endpoints: subject, request schema, and the plain function in src/ops that
 * answers it. Another front end (an HTTP API) can serve the same table.
 */
import type { z } from "zod";
import type { OpsContext } from "../../src/ops/context.js";
import { listDead, replayDead } from "../../src/ops/dead.js";
import { shards, workers } from "../../src/ops/fleet.js";
import { cancelRun, preflightRun, retryRun } from "../../src/ops/run-control.js";
import { getRun, listRuns } from "../../src/ops/runs.js";
import { usage } from "../../src/ops/usage.js";
import {
  DeadListRequestSchema,
  DeadReplayRequestSchema,
  RunsCancelRequestSchema,
  RunsGetRequestSchema,
  RunsListRequestSchema,
  RunsPreflightRequestSchema,
  RunsRetryRequestSchema,
  ShardsRequestSchema,
  UsageRequestSchema,
  WorkersRequestSchema,
} from "../../src/schemas/ops.js";
import { OPS } from "../../src/subjects.js";

export interface OpsEndpointDef<S extends z.ZodType = z.ZodType> {
  /** The endpoint's name in `nats micro info` (letters, digits, `-`, `_`). */
  name: string;
  subject: string;
  description: string;
  schema: S;
  run: (ctx: OpsContext, req: z.output<S>) => Promise<unknown>;
}

const def = <S extends z.ZodType>(d: OpsEndpointDef<S>): OpsEndpointDef => d as unknown as OpsEndpointDef;

export const OPS_ENDPOINTS: OpsEndpointDef[] = [
  def({ name: "shards", subject: OPS.shards, schema: ShardsRequestSchema, run: shards, description: "health of every shard: depth, bound workers and their logins, why jobs wait; body {runtime?}" }),
  def({ name: "workers", subject: OPS.workers, schema: WorkersRequestSchema, run: workers, description: "every live worker: runtimes, shards, logins, in-flight jobs, version, uptime; body {all?}" }),
  def({ name: "runs-list", subject: OPS.runsList, schema: RunsListRequestSchema, run: listRuns, description: "runs newest first; body {state?, runtime?, repository?, shard?, limit?}" }),
  def({ name: "runs-get", subject: OPS.runsGet, schema: RunsGetRequestSchema, run: getRun, description: "one run's record and event history; body {runId, states?} (states: also the machine's frames)" }),
  def({ name: "runs-cancel", subject: OPS.runsCancel, schema: RunsCancelRequestSchema, run: cancelRun, description: "cancel a queued or running run; body {runId, reason?}" }),
  def({ name: "runs-retry", subject: OPS.runsRetry, schema: RunsRetryRequestSchema, run: retryRun, description: "queue a failed, cancelled or dead-lettered run again; body {runId}" }),
  def({ name: "runs-preflight", subject: OPS.runsPreflight, schema: RunsPreflightRequestSchema, run: preflightRun, description: "re-run the run's login preflight on a worker serving its shard; body {runId, forceRefresh?}" }),
  def({ name: "dead-list", subject: OPS.deadList, schema: DeadListRequestSchema, run: listDead, description: "dead letters newest first; body {limit?}" }),
  def({ name: "usage", subject: OPS.usage, schema: UsageRequestSchema, run: usage, description: "tokens, turns and cost the agents reported, summed over a window; body {since?: 24h|7d|all, by?: login|runtime|model|repository}" }),
  def({ name: "dead-replay", subject: OPS.deadReplay, schema: DeadReplayRequestSchema, run: replayDead, description: "re-submit a dead letter under a new id; body {jobId} or {seq}" }),
];

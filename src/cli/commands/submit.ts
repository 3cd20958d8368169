/** `moonmind submit`: validate locally, publish to jobs.submit, optionally follow to the end. */
import { readFile } from "node:fs/promises";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { UsageError } from "../../errors.js";
import { canonicalJson } from "../../json.js";
import { route } from "../../routing.js";
import type { SubmissionEvent } from "../../schemas/events.js";
import { TERMINAL_RUN_STATES, type RunState } from "../../schemas/run.js";
import { newJobId, parseSubmission } from "../../submission.js";
import { SUBJECTS, jobEventFilter, submissionEventFilter } from "../../subjects.js";
import { readRunRecord, type CliContext } from "../context.js";
import { followStatus } from "../follow.js";
import { isTerminal, jobLine } from "../render.js";
import { startProgress } from "../table.js";
import { endedForGood, exitForTerminal } from "./watch.js";

export interface SubmitOptions {
  repository?: string;
  instructions?: string;
  runtime?: string;
  ref?: string;
  model?: string;
  resume?: string;
  id?: string;
  maxAttempts?: string;
  affinityKey?: string;
  file?: string;
  wait?: boolean;
  timeout?: string;
  json?: boolean;
}

export async function gatherPayload(opts: SubmitOptions, readStdin: () => Promise<string>): Promise<Record<string, unknown>> {
  let payload: Record<string, unknown> = {};
  if (opts.file !== undefined) {
    let text: string;
    try {
      text = opts.file === "-" ? await readStdin() : await readFile(opts.file, "utf8");
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : code === "EACCES" ? "permission denied" : (err as Error).message;
      throw new UsageError(`--file ${opts.file}: ${why}`, { cause: err, remedy: "give the path of a JSON job file, or - to read it from stdin" });
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
      payload = parsed as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--file ${opts.file}: ${(err as Error).message}`, { remedy: "give a JSON object, e.g. {\"repository\":\"org/repo\",\"instructions\":\"...\"}" });
    }
  }
  const flags: Record<string, unknown> = {
    id: opts.id,
    repository: opts.repository,
    instructions: opts.instructions,
    runtime: opts.runtime,
    ref: opts.ref,
    model: opts.model,
    affinityKey: opts.affinityKey,
    maxAttempts: opts.maxAttempts === undefined ? undefined : Number(opts.maxAttempts),
  };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) payload[k] = v;
  if (opts.resume !== undefined) {
    const task = typeof payload.task === "object" && payload.task !== null && !Array.isArray(payload.task) ? (payload.task as Record<string, unknown>) : {};
    payload.task = { ...task, resume: { runId: opts.resume } };
  }
  payload.id ??= newJobId();
  return payload;
}

export async function submitCommand(ctx: CliContext, opts: SubmitOptions, readStdin: () => Promise<string>): Promise<number> {
  if (opts.timeout !== undefined && !(Number(opts.timeout) > 0)) throw new UsageError(`--timeout must be a number of seconds (got '${opts.timeout}')`);
  const payload = await gatherPayload(opts, readStdin);
  const env = ctx.config.env;
  // The same validation intake runs, so a mistake is reported here, before anything is queued.
  const checked = parseSubmission(new TextEncoder().encode(JSON.stringify(payload)), {
    maxPayloadBytes: env.MOONMIND_MAX_PAYLOAD_BYTES,
    defaultRuntime: env.MOONMIND_DEFAULT_TASK_RUNTIME,
    allowLocalRepos: true, // the deployment's intake decides; it rejects with the reason if it disallows them
  });
  if (!checked.ok) throw new UsageError(`job refused: ${checked.reason}`);
  const job = checked.job;
  const r = route(job.targetRuntime, job.repository, ctx.config.shardCounts[job.targetRuntime], job.affinityKey);

  const nc = await ctx.connect();
  try {
    // Whether the id names a run already: then the verdict on this submission comes as a
    // status.submissions.<id> event (intake), or not at all when JetStream dedupes the publish.
    const existing = await readRunRecord(nc, job.id);
    // Deduped as a submission; not the bare job id, which intake uses for the routed message in the same stream.
    const ack = await jetstream(nc).publish(SUBJECTS.submit, JSON.stringify(payload), { msgID: `submit-${job.id}` });
    if (opts.json) ctx.out(JSON.stringify({ jobId: job.id, subject: r.subject, consumer: r.consumer, stream: ack.stream, seq: ack.seq, ...(ack.duplicate ? { duplicate: true } : {}) }));
    else ctx.out(`job ${job.id} submitted → ${r.subject} (${job.targetRuntime}, shard ${r.shard})`);

    if (ack.duplicate && existing) {
      // JetStream dropped it (same message id within the dedupe window): intake never sees it, so say it here.
      const sameRequest = canonicalJson(existing.request) === canonicalJson(job);
      report(ctx, opts, { type: "duplicate", at: new Date().toISOString(), jobId: job.id, state: existing.state, sameRequest });
      if (!sameRequest) return 1;
      if (!opts.wait || TERMINAL_RUN_STATES.includes(existing.state)) return exitForState(existing.state);
    }
    if (!opts.wait && !(existing && !ack.duplicate)) return 0;
    // Without --wait, an id that names a run still gets intake's verdict on this submission (bounded).
    const verdictOnly = !opts.wait;
    return await follow(ctx, nc, job.id, { ...opts, skipHistory: existing !== undefined && !ack.duplicate, verdictOnly, ...(verdictOnly ? { timeout: "10" } : {}) });
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

function report(ctx: CliContext, opts: SubmitOptions, e: SubmissionEvent): void {
  if (opts.json) ctx.out(JSON.stringify(e));
  else if (e.type === "duplicate") {
    ctx.err(
      e.sameRequest
        ? `moonmind submit: ${e.jobId} already submitted, state ${e.state}; not run again`
        : `moonmind submit: ${e.jobId} already submitted with a different request, state ${e.state}; this one is not run (use another --id)`,
    );
  } else ctx.err(`moonmind submit: ${e.jobId} rejected: ${e.reason}`);
}

function exitForState(state: RunState): number {
  return state === "succeeded" ? 0 : TERMINAL_RUN_STATES.includes(state) ? 1 : 0;
}

/**
 * Follows the job's events (and its submission's verdict) to the end. With `skipHistory` (the id
 * named a run before this submission) the old run's events are held back until the verdict says
 * what this submission became.
 */
async function follow(
  ctx: CliContext,
  nc: NatsConnection,
  jobId: string,
  opts: SubmitOptions & { skipHistory: boolean; verdictOnly?: boolean },
): Promise<number> {
  const timeoutMs = opts.timeout === undefined ? 0 : Number(opts.timeout) * 1_000;
  const controller = new AbortController();
  const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(), timeoutMs) : undefined;
  const progress = startProgress(ctx.terminal, `waiting for ${jobId}`);
  let holding = opts.skipHistory;
  let lastWaiting: string | undefined;
  try {
    for await (const item of followStatus(nc, { filter: [jobEventFilter(jobId), submissionEventFilter(jobId)], signal: controller.signal })) {
      if (item.kind === "job" && item.event.type === "state") continue; // machine transitions are the live view's
      progress.clear();
      if (item.kind === "submission") {
        report(ctx, opts, item.event);
        if (item.event.type === "rejected") return 2;
        if (!item.event.sameRequest) return 1;
        if (opts.verdictOnly) return 0;
        if (TERMINAL_RUN_STATES.includes(item.event.state)) return exitForState(item.event.state);
        holding = false; // the run goes on: what follows is live
        continue;
      }
      if (item.kind !== "job" || holding) continue;
      const e = item.event;
      if (e.type === "waiting") {
        // The reason once, not once per re-check.
        if (e.reason === lastWaiting) continue;
        lastWaiting = e.reason;
      } else lastWaiting = undefined;
      ctx.out(opts.json ? JSON.stringify(e) : jobLine(e));
      progress.update(`${jobId}: ${e.type}`);
      if (isTerminal(e) && (await endedForGood(nc, e))) return exitForTerminal(e);
    }
  } finally {
    clearTimeout(timer);
    progress.stop();
  }
  if (opts.verdictOnly) {
    ctx.err(`moonmind submit: ${jobId} names an existing run; intake gave no verdict within ${opts.timeout} s (moonmind runs get ${jobId})`);
    return 1;
  }
  ctx.err(`moonmind submit: gave up waiting after ${opts.timeout} s; the job goes on (moonmind watch ${jobId})`);
  return 1;
}

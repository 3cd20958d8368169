/** `moonmind submit`: validate locally, publish to jobs.submit, optionally follow to the end. */
import { readFile } from "node:fs/promises";
import { jetstream } from "@nats-io/jetstream";
import { UsageError } from "../../errors.js";
import { route } from "../../routing.js";
import { newJobId, parseSubmission } from "../../submission.js";
import { SUBJECTS, jobEventFilter } from "../../subjects.js";
import type { CliContext } from "../context.js";
import { followStatus } from "../follow.js";
import { isTerminal, jobLine } from "../render.js";

export interface SubmitOptions {
  repository?: string;
  instructions?: string;
  runtime?: string;
  ref?: string;
  model?: string;
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
    const text = opts.file === "-" ? await readStdin() : await readFile(opts.file, "utf8");
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
  payload.id ??= newJobId();
  return payload;
}

export async function submitCommand(ctx: CliContext, opts: SubmitOptions, readStdin: () => Promise<string>): Promise<number> {
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
    // Deduped as a submission; not the bare job id, which intake uses for the routed message in the same stream.
    const ack = await jetstream(nc).publish(SUBJECTS.submit, JSON.stringify(payload), { msgID: `submit-${job.id}` });
    if (opts.json) ctx.out(JSON.stringify({ jobId: job.id, subject: r.subject, consumer: r.consumer, stream: ack.stream, seq: ack.seq }));
    else ctx.out(`job ${job.id} submitted → ${r.subject} (${job.targetRuntime}, shard ${r.shard})`);
    if (!opts.wait) return 0;

    const timeoutMs = opts.timeout === undefined ? 0 : Number(opts.timeout) * 1_000;
    const controller = new AbortController();
    const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(), timeoutMs) : undefined;
    try {
      for await (const item of followStatus(nc, { filter: jobEventFilter(job.id), signal: controller.signal })) {
        if (item.kind !== "job") continue;
        ctx.out(opts.json ? JSON.stringify(item.event) : jobLine(item.event));
        if (isTerminal(item.event)) return item.event.type === "succeeded" ? 0 : 1;
      }
    } finally {
      clearTimeout(timer);
    }
    ctx.err(`moonmind submit: gave up waiting after ${opts.timeout} s; the job goes on (moonmind watch ${job.id})`);
    return 1;
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

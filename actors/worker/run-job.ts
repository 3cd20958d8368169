/**
 * Starting one job: the message parsed, its machine created and started, the message kept alive
 * from delivery to settlement, and settled.
 */
import type { JsMsg } from "@nats-io/jetstream";
import { createActor, toPromise, type Actor } from "xstate";
import { transitionInspector } from "../../src/machine-state.js";
import { jobMeta } from "../../src/schemas/job.js";
import type { Settlement } from "../../machines/job.machine.js";
import { retryDelayMs } from "../../src/backoff.js";
import type { Env } from "../../src/config.js";
import type { Logger } from "../../src/logger.js";
import { parseJson } from "../../src/json.js";
import { persist } from "../../src/runs/persist.js";
import { JobRequestSchema } from "../../src/schemas/job.js";
import { provideJobMachine, type JobDeps } from "./job-effects.js";

export interface RunningJob {
  jobId: string;
  /** The stream sequence of the message it runs. */
  seq: number;
  actor: Actor<ReturnType<typeof provideJobMachine>>;
  /** Settles when the message is settled; never rejects. */
  done: Promise<void>;
}

/** How often a held message is kept alive: well inside ack_wait, so a late tick never loses it. */
export function keepAliveMs(ackWaitMs: number): number {
  return Math.max(500, Math.floor(ackWaitMs / 3));
}

export function startJob(
  deps: JobDeps,
  msg: JsMsg,
  env: Env,
  log: Logger,
  runningHere: (jobId: string) => RunningJob | undefined = () => undefined,
): RunningJob | undefined {
  const parsed = JobRequestSchema.safeParse(parseJson(msg.data));
  if (!parsed.success) {
    // Intake validates everything it routes; anything else on a shard subject is not ours to run.
    log.error({ subject: msg.subject, seq: msg.seq }, "unparseable job on a shard subject; terminating it");
    msg.term();
    return undefined;
  }
  const job = parsed.data;
  const jobLog = log.child({ jobId: job.id, delivery: msg.info.deliveryCount });
  const here = runningHere(job.id);
  if (here?.seq === msg.seq) {
    // The same message again (a restarted server redelivers what was pending before it went
    // down): the delivery running here keeps it alive and settles it. Starting it would run it twice.
    jobLog.info({ seq: msg.seq }, "redelivery of a job running here; left to the run under way");
    return undefined;
  }
  if (here) {
    // Another copy of a job running here: look at it again once this run has settled.
    msg.nak(env.MOONMIND_WORKER_TTL_MS);
    return undefined;
  }
  // Claim, preflight, checkout, the agent, artifacts, record writes: the message is ours throughout.
  const lease = setInterval(() => {
    try {
      msg.working();
    } catch (err) {
      jobLog.warn({ err }, "in-progress ack not sent");
    }
  }, keepAliveMs(env.MOONMIND_ACK_WAIT_MS));
  const actor = createActor(provideJobMachine(deps, msg, job), {
    input: {
      job,
      jobTimeoutMs: env.MOONMIND_JOB_TIMEOUT_MS,
      retryDelay: (attempt) =>
        retryDelayMs(attempt, { baseMs: env.MOONMIND_RETRY_BACKOFF_MS, maxMs: env.MOONMIND_RETRY_BACKOFF_MAX_MS, jitter: 0.2 }, Math.random),
      requeueDelayMs: env.MOONMIND_WORKER_TTL_MS,
    },
    // The live view follows the job from its claim on: a delivery refused before it (busy,
    // duplicate) is not this worker's run and draws nothing.
    inspect: transitionInspector("job", (t, snapshot) => {
      const attempt = (snapshot.context as { attempt?: number } | undefined)?.attempt ?? 0;
      if (attempt === 0) return;
      deps.publisher
        .job(job.id, { type: "state", machine: "job", workerId: deps.workerId, attempt, ...t }, jobMeta(job))
        .catch((err: unknown) => jobLog.debug({ err }, "state event not published"));
    }),
  });
  const done = toPromise(actor)
    .then(async (output) => {
      await settle(msg, output.settlement, env.MOONMIND_ACK_WAIT_MS, jobLog);
      jobLog.info({ settlement: output.settlement.kind }, "job settled");
    })
    .catch((err: unknown) => {
      jobLog.error({ err }, "job machine failed; handing the message back");
      msg.nak(5_000);
    })
    .finally(() => clearInterval(lease));
  actor.start();
  return { jobId: job.id, seq: msg.seq, actor, done };
}

async function settle(msg: JsMsg, s: Settlement, retryMs: number, log: Logger): Promise<void> {
  switch (s.kind) {
    case "ack":
      // Confirmed, and retried for one ack_wait while the server is away; past that the message
      // comes back, and the claim finds the run finished and only acks it.
      await persist("the ack", () => msg.ackAck(), { deadlineMs: retryMs, log });
      return;
    case "nak":
      msg.nak(s.delayMs);
      return;
    case "term":
      msg.term();
      return;
    case "none":
      return;
  }
}

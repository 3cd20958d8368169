/** Starting one job: the message parsed, its machine created and started, the message settled. */
import type { JsMsg } from "@nats-io/jetstream";
import { createActor, toPromise, type Actor } from "xstate";
import type { Settlement } from "../../machines/job.machine.js";
import { retryDelayMs } from "../../src/backoff.js";
import type { Env } from "../../src/config.js";
import type { Logger } from "../../src/logger.js";
import { parseJson } from "../../src/json.js";
import { JobRequestSchema } from "../../src/schemas/job.js";
import { provideJobMachine, type JobDeps } from "./job-effects.js";

export interface RunningJob {
  jobId: string;
  actor: Actor<ReturnType<typeof provideJobMachine>>;
  /** Settles when the message is settled; never rejects. */
  done: Promise<void>;
}

export function startJob(deps: JobDeps, msg: JsMsg, env: Env, log: Logger): RunningJob | undefined {
  const parsed = JobRequestSchema.safeParse(parseJson(msg.data));
  if (!parsed.success) {
    // Intake validates everything it routes; anything else on a shard subject is not ours to run.
    log.error({ subject: msg.subject, seq: msg.seq }, "unparseable job on a shard subject; terminating it");
    msg.term();
    return undefined;
  }
  const job = parsed.data;
  const actor = createActor(provideJobMachine(deps, msg, job), {
    input: {
      job,
      keepAliveMs: Math.max(1_000, Math.floor(env.MOONMIND_ACK_WAIT_MS / 3)),
      jobTimeoutMs: env.MOONMIND_JOB_TIMEOUT_MS,
      retryDelay: (attempt) =>
        retryDelayMs(attempt, { baseMs: env.MOONMIND_RETRY_BACKOFF_MS, maxMs: env.MOONMIND_RETRY_BACKOFF_MAX_MS, jitter: 0.2 }, Math.random),
      requeueDelayMs: env.MOONMIND_WORKER_TTL_MS,
    },
  });
  const jobLog = log.child({ jobId: job.id, delivery: msg.info.deliveryCount });
  const done = toPromise(actor)
    .then(async (output) => {
      await settle(msg, output.settlement);
      jobLog.info({ settlement: output.settlement.kind }, "job settled");
    })
    .catch((err: unknown) => {
      jobLog.error({ err }, "job machine failed; handing the message back");
      msg.nak(5_000);
    });
  actor.start();
  return { jobId: job.id, actor, done };
}

async function settle(msg: JsMsg, s: Settlement): Promise<void> {
  switch (s.kind) {
    case "ack":
      await msg.ackAck();
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

/**
 * Publishes status events to JetStream (STATUS captures `status.>`), so every event is both
 * live for `nats sub` and replayable history.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { DeadLetter, JobEvent, WorkerEvent } from "./schemas/events.js";
import type { JobMeta } from "./schemas/job.js";
import { deadSubject, jobEventSubject, workerEventSubject } from "./subjects.js";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type JobEventBody = DistributiveOmit<JobEvent, "at" | "jobId" | "meta">;
export type WorkerEventBody = DistributiveOmit<WorkerEvent, "at" | "workerId">;

export class StatusPublisher {
  constructor(
    private readonly js: JetStreamClient,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** `meta` (the job's skill and stage) rides on every event of the job. */
  async job(jobId: string, body: JobEventBody, meta?: JobMeta): Promise<JobEvent> {
    const event = { ...body, at: this.now().toISOString(), jobId, ...(meta ? { meta } : {}) } as JobEvent;
    await this.js.publish(jobEventSubject(jobId, event.type), JSON.stringify(event));
    return event;
  }

  async worker(workerId: string, body: WorkerEventBody): Promise<WorkerEvent> {
    const event = { ...body, at: this.now().toISOString(), workerId } as WorkerEvent;
    await this.js.publish(workerEventSubject(workerId, event.type), JSON.stringify(event));
    return event;
  }

  /** A copy for operators on `dead.jobs.<id>` (DEAD keeps it 30 days); the caller redacts `original`. */
  async dead(letter: Omit<DeadLetter, "at">): Promise<void> {
    const body: DeadLetter = { ...letter, at: this.now().toISOString() };
    await this.js.publish(deadSubject(letter.jobId), JSON.stringify(body));
  }
}

/** Waiting on worker events (online, offline, …) with a bounded timeout. */
import type { NatsConnection } from "@nats-io/nats-core";
import { WorkerEventSchema, type WorkerEvent } from "../../src/schemas/events.js";
import { workerEventFilter } from "../../src/subjects.js";

export function waitForWorkerEvent(
  nc: NatsConnection,
  match: (e: WorkerEvent) => boolean,
  timeoutMs = 15_000,
): Promise<WorkerEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`no matching worker event within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = nc.subscribe(workerEventFilter(), {
      callback: (_err, msg) => {
        const event = WorkerEventSchema.parse(msg.json());
        if (!match(event)) return;
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(event);
      },
    });
  });
}

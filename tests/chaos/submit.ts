/**
 * Submits the run's jobs to `jobs.submit` over the whole run rather than all at once: at most
 * `backlog` jobs are waiting or running, so intake is busy whenever a fault strikes. Publishes are
 * pipelined; one that fails (the server is away) is sent again under the same Nats-Msg-Id, which
 * JetStream deduplicates.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { setTimeout as sleep } from "node:timers/promises";
import { SUBJECTS } from "../../src/subjects.js";

export interface ChaosJob {
  id: string;
  sleepMs: number;
  body: string;
}

export interface SubmitStats {
  submitted: number;
  retries: number;
  lastSubmitAt: number;
}

export function makeJobs(count: number, runTag: string, ledgerDir: string, repo: string, sleepMs: () => number): ChaosJob[] {
  return Array.from({ length: count }, (_, i) => {
    const id = `chaos-${runTag}-${i}`;
    const ms = sleepMs();
    const instructions = `ledger ${ledgerDir}/${id}\nsleep ${ms}\nwrite out/${id}.md: x`;
    return { id, sleepMs: ms, body: JSON.stringify({ id, repository: repo, affinityKey: id, instructions }) };
  });
}

export async function submitPaced(
  js: JetStreamClient,
  jobs: ChaosJob[],
  o: { backlog: number; finished: () => number; signal: AbortSignal; stats: SubmitStats },
): Promise<void> {
  const queue = [...jobs];
  while (queue.length > 0 && !o.signal.aborted) {
    const room = o.backlog - (o.stats.submitted - o.finished());
    if (room <= 0) {
      await sleep(50);
      continue;
    }
    const batch = queue.splice(0, Math.min(room, 200));
    const results = await Promise.allSettled(
      batch.map((j) => js.publish(SUBJECTS.submit, j.body, { msgID: `submit-${j.id}`, timeout: 5_000 })),
    );
    const failed = batch.filter((_, i) => results[i]!.status === "rejected");
    o.stats.submitted += batch.length - failed.length;
    if (failed.length > 0) {
      o.stats.retries += failed.length;
      queue.unshift(...failed);
      await sleep(500); // the server is away: try again shortly
    }
    o.stats.lastSubmitAt = Date.now();
  }
}

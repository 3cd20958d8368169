/**
 * What the runtime itself says, read from outside: a live mirror of KV `runs` (a watch, with
 * reads by key where the watch may have missed something), the terminal events in STATUS, the
 * messages left in JOBS and each worker's in-flight jobs in KV `workers`.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { TERMINAL_RUN_STATES, type RunState } from "../../src/schemas/run.js";
import { BUCKETS, STREAMS, jobEventSubject } from "../../src/subjects.js";

export interface RunView {
  state: RunState;
  workerId: string | undefined;
  attempts: number;
  revision: number;
  /** The last error's code (RESULT_LOST: the agent finished on a worker killed before it stored the result). */
  errorCode?: string;
  /** When this process first saw the record terminal (ms since epoch). */
  terminalSeenAt?: number;
}

export const TERMINAL_EVENTS = ["succeeded", "failed", "cancelled"] as const;

export interface Observer {
  runs: Map<string, RunView>;
  isTerminal(jobId: string): boolean;
  terminalCount(): number;
  /** Reads these records by key (the watch may lag or have missed a write while the server was away). */
  refresh(jobIds: string[]): Promise<void>;
  /** The jobs a worker lists as in flight in KV `workers`. */
  inFlight(workerId: string): Promise<string[]>;
  /** Terminal events per job, from the STATUS stream. */
  terminalEvents(): Promise<Map<string, number>>;
  jobsLeft(): Promise<number>;
  close(): Promise<void>;
}

export async function observe(nc: NatsConnection): Promise<Observer> {
  const kvm = new Kvm(nc);
  const runsKv: KV = await kvm.open(BUCKETS.runs);
  const workersKv: KV = await kvm.open(BUCKETS.workers);
  const js: JetStreamClient = jetstream(nc);
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const runs = new Map<string, RunView>();
  const apply = (key: string, revision: number, value: unknown) => {
    const known = runs.get(key);
    if (known && known.revision >= revision) return;
    const r = value as { state: RunState; workerId?: string; attempts: number; lastError?: { code?: string } };
    const view: RunView = { state: r.state, workerId: r.workerId, attempts: r.attempts, revision, ...(r.lastError?.code ? { errorCode: r.lastError.code } : {}) };
    const seenAt = known?.terminalSeenAt ?? (TERMINAL_RUN_STATES.includes(r.state) ? Date.now() : undefined);
    if (seenAt !== undefined) view.terminalSeenAt = seenAt;
    runs.set(key, view);
  };
  const watcher = await runsKv.watch({ key: ">" });
  const watching = (async () => {
    for await (const e of watcher) {
      if (e.operation === "PUT" && e.length > 0) apply(e.key, e.revision, e.json());
    }
  })().catch(() => undefined);
  const isTerminal = (id: string) => {
    const r = runs.get(id);
    return r !== undefined && TERMINAL_RUN_STATES.includes(r.state);
  };

  return {
    runs,
    isTerminal,
    terminalCount: () => [...runs.keys()].filter(isTerminal).length,
    async refresh(jobIds) {
      for (let i = 0; i < jobIds.length; i += 100) {
        await Promise.all(
          jobIds.slice(i, i + 100).map(async (id) => {
            const e = await runsKv.get(id).catch(() => null);
            if (e && e.operation === "PUT" && e.length > 0) apply(id, e.revision, e.json());
          }),
        );
      }
    },
    async inFlight(workerId) {
      const e = await workersKv.get(workerId).catch(() => null);
      if (!e || e.operation !== "PUT" || e.length === 0) return [];
      return (e.json() as { inFlight?: string[] }).inFlight ?? [];
    },
    async terminalEvents() {
      const counts = new Map<string, number>();
      const consumer = await js.consumers.get(STREAMS.status, {
        filter_subjects: TERMINAL_EVENTS.map((t) => jobEventSubject("*", t)),
      });
      let pending = (await consumer.info()).num_pending;
      while (pending > 0) {
        const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          const id = m.subject.split(".")[2]!;
          counts.set(id, (counts.get(id) ?? 0) + 1);
          pending = m.info.pending;
        }
        if (got === 0) break;
      }
      await consumer.delete().catch(() => undefined);
      return counts;
    },
    async jobsLeft() {
      return (await jsm.streams.info(STREAMS.jobs)).state.messages;
    },
    async close() {
      watcher.stop();
      await watching;
    },
  };
}

/** The NATS clients every ops request uses, opened once per ops replica (or HTTP server). */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import type { Config } from "../config.js";
import type { Runtime } from "../schemas/runtime.js";
import { StatusPublisher } from "../events.js";
import { RunStore } from "../runs/store.js";
import { BUCKETS } from "../subjects.js";

export interface OpsContext {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  runsKv: KV;
  runs: RunStore;
  workersKv: KV;
  publisher: StatusPublisher;
  config: Config;
  now: () => Date;
  /** Runs queued on a shard, when this replica follows them (src/ops/waiting-monitor.ts). */
  queuedRuns?: (runtime: Runtime, shard: number) => number;
  /** How long a request to a worker may take (preflight can run a CLI). */
  workerTimeoutMs: number;
}

export async function openOpsContext(nc: NatsConnection, config: Config, now: () => Date = () => new Date()): Promise<OpsContext> {
  const js = jetstream(nc);
  const kvm = new Kvm(nc);
  const runsKv = await kvm.open(BUCKETS.runs);
  return {
    nc,
    js,
    jsm: await jetstreamManager(nc),
    runsKv,
    runs: new RunStore(runsKv),
    workersKv: await kvm.open(BUCKETS.workers),
    publisher: new StatusPublisher(js, now),
    config,
    now,
    workerTimeoutMs: 30_000,
  };
}

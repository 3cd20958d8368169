/**
 * Idempotent provisioning of every stream, consumer, bucket and object store the runtime
 * uses. Running it again changes nothing; a changed setting (shard count, ack wait, replicas)
 * is applied by update where JetStream allows it.
 */
import { ConfigError } from "../errors.js";
import { isNotFound, permissionViolation } from "./errors.js";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { ensureLocksBucket } from "../auth/volume-lock.js";
import type { Config } from "../config.js";
import { RUNTIMES } from "../schemas/runtime.js";
import {
  BUCKETS,
  INTAKE_CONSUMER,
  OBJECT_STORES,
  STREAMS,
  SUBJECTS,
  shardConsumer,
  shardSubject,
} from "../subjects.js";

const DAY_MS = 24 * 3_600_000;
const LOGS_MAX_BYTES = 1024 ** 3;
const STATUS_PER_SUBJECT = 10_000;

export interface ProvisionReport {
  created: string[];
  updated: string[];
  unchanged: string[];
}

export function streamConfigs(config: Config): Array<Partial<StreamConfig> & { name: string }> {
  const replicas = config.env.MOONMIND_STREAM_REPLICAS;
  return [
    {
      name: STREAMS.jobs,
      subjects: [SUBJECTS.submit, SUBJECTS.allShards],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(config.env.MOONMIND_DUPLICATE_WINDOW_MS),
      num_replicas: replicas,
      max_msg_size: config.env.MOONMIND_MAX_PAYLOAD_BYTES * 4,
    },
    {
      name: STREAMS.status,
      subjects: [SUBJECTS.status],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(7 * DAY_MS),
      // Bounds the chattiest subjects (a worker's heartbeats: ~14 h at 5 s; a job's progress).
      max_msgs_per_subject: STATUS_PER_SUBJECT,
      num_replicas: replicas,
    },
    {
      name: STREAMS.logs,
      subjects: [SUBJECTS.logs],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(DAY_MS),
      max_bytes: LOGS_MAX_BYTES,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
    },
    {
      name: STREAMS.dead,
      subjects: [SUBJECTS.dead],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(30 * DAY_MS),
      num_replicas: replicas,
    },
  ];
}

export function consumerConfigs(config: Config): Array<Partial<ConsumerConfig> & { durable_name: string }> {
  const common = {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(config.env.MOONMIND_ACK_WAIT_MS),
    max_deliver: config.env.MOONMIND_MAX_DELIVER,
    // Several workers pull from one shard consumer; each pull asks for one job at a time.
    max_ack_pending: 10_000,
  };
  const shards = RUNTIMES.flatMap((runtime) =>
    Array.from({ length: config.shardCounts[runtime] }, (_, n) => ({
      ...common,
      durable_name: shardConsumer(runtime, n),
      filter_subject: shardSubject(runtime, n),
    })),
  );
  return [{ ...common, durable_name: INTAKE_CONSUMER, filter_subject: SUBJECTS.submit }, ...shards];
}

/**
 * Makes (or checks) everything. Under a role that may only check (a worker's, in nats.conf) a
 * missing or changed stream is a refusal: reported as a configuration error naming the fix.
 */
export async function provision(nc: NatsConnection, config: Config): Promise<ProvisionReport> {
  try {
    return await provisionAll(nc, config);
  } catch (err) {
    const e = permissionViolation(err);
    if (!e) throw err;
    throw new ConfigError(`this NATS login may not create or change what the runtime needs (refused: ${e.operation ?? "publish"} to ${e.subject ?? "?"})`, {
      cause: err,
      remedy:
        "start the intake actor first (its role provisions streams, consumers and buckets), " +
        "and give every actor the same MOONMIND_*_SHARDS, MOONMIND_STREAM_REPLICAS and MOONMIND_ACK_WAIT_MS",
    });
  }
}

async function provisionAll(nc: NatsConnection, config: Config): Promise<ProvisionReport> {
  const jsm = await jetstreamManager(nc);
  const report: ProvisionReport = { created: [], updated: [], unchanged: [] };

  for (const cfg of streamConfigs(config)) await ensureStream(jsm, cfg, report);
  for (const cfg of consumerConfigs(config)) await ensureConsumer(jsm, STREAMS.jobs, cfg, report);

  const replicas = config.env.MOONMIND_STREAM_REPLICAS;
  const kvm = new Kvm(nc);
  await ensureBucket(jsm, kvm, BUCKETS.runs, { history: 5, replicas, storage: StorageType.File }, report);
  await ensureBucket(
    jsm,
    kvm,
    BUCKETS.workers,
    { history: 1, replicas, storage: StorageType.File, ttl: config.env.MOONMIND_WORKER_TTL_MS },
    report,
  );
  const locksExisted = await streamExists(jsm, `KV_${BUCKETS.authLocks}`);
  await ensureLocksBucket(nc, replicas);
  if (!locksExisted) report.created.push(`kv ${BUCKETS.authLocks}`);
  else await ensureReplicas(jsm, `KV_${BUCKETS.authLocks}`, replicas, `kv ${BUCKETS.authLocks}`, report);
  const objm = new Objm(nc);
  const objStream = `OBJ_${OBJECT_STORES.artifacts}`;
  if (await streamExists(jsm, objStream)) {
    await ensureReplicas(jsm, objStream, replicas, `object store ${OBJECT_STORES.artifacts}`, report);
  } else {
    await objm.create(OBJECT_STORES.artifacts, { replicas, storage: StorageType.File });
    report.created.push(`object store ${OBJECT_STORES.artifacts}`);
  }
  return report;
}

/** A bucket's stream raised (or lowered) to `replicas`, e.g. when a single server became a cluster. */
async function ensureReplicas(jsm: JetStreamManager, stream: string, replicas: number, label: string, report: ProvisionReport): Promise<void> {
  const info = await jsm.streams.info(stream);
  if (info.config.num_replicas === replicas) {
    report.unchanged.push(label);
    return;
  }
  await jsm.streams.update(stream, { ...info.config, num_replicas: replicas });
  report.updated.push(label);
}

async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}


/** Fields we own; anything else an operator set on the stream is left alone. */
function differs<T extends object>(want: Partial<T>, have: T): boolean {
  return Object.entries(want).some(([k, v]) => JSON.stringify((have as Record<string, unknown>)[k]) !== JSON.stringify(v));
}

async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
  report: ProvisionReport,
): Promise<void> {
  let info;
  try {
    info = await jsm.streams.info(cfg.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(cfg);
    report.created.push(`stream ${cfg.name}`);
    return;
  }
  // Retention and storage cannot change in place; report instead of failing half-way.
  const { retention, storage, ...mutable } = cfg;
  if (retention !== info.config.retention || storage !== info.config.storage) {
    throw new Error(
      `stream ${cfg.name} exists with retention=${info.config.retention} storage=${info.config.storage}; ` +
        `expected retention=${retention} storage=${storage}. Back it up and delete it (nats stream rm ${cfg.name}) to re-provision`,
    );
  }
  if (differs(mutable, info.config)) {
    await jsm.streams.update(cfg.name, { ...info.config, ...mutable });
    report.updated.push(`stream ${cfg.name}`);
  } else {
    report.unchanged.push(`stream ${cfg.name}`);
  }
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  cfg: Partial<ConsumerConfig> & { durable_name: string },
  report: ProvisionReport,
): Promise<void> {
  let info;
  try {
    info = await jsm.consumers.info(stream, cfg.durable_name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(stream, cfg);
    report.created.push(`consumer ${stream}/${cfg.durable_name}`);
    return;
  }
  const { ack_wait, max_deliver, max_ack_pending } = cfg;
  const mutable = { ack_wait, max_deliver, max_ack_pending };
  if (differs(mutable, info.config)) {
    await jsm.consumers.update(stream, cfg.durable_name, mutable);
    report.updated.push(`consumer ${stream}/${cfg.durable_name}`);
  } else {
    report.unchanged.push(`consumer ${stream}/${cfg.durable_name}`);
  }
}

async function ensureBucket(
  jsm: JetStreamManager,
  kvm: Kvm,
  bucket: string,
  opts: { history: number; replicas: number; storage: StorageType; ttl?: number },
  report: ProvisionReport,
): Promise<void> {
  const stream = `KV_${bucket}`;
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await kvm.create(bucket, opts);
    report.created.push(`kv ${bucket}`);
    return;
  }
  const maxAge = opts.ttl === undefined ? 0 : nanos(opts.ttl);
  if (info.config.max_age !== maxAge || info.config.max_msgs_per_subject !== opts.history || info.config.num_replicas !== opts.replicas) {
    await jsm.streams.update(stream, { ...info.config, max_age: maxAge, max_msgs_per_subject: opts.history, num_replicas: opts.replicas });
    report.updated.push(`kv ${bucket}`);
  } else {
    report.unchanged.push(`kv ${bucket}`);
  }
}

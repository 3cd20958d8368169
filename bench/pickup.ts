/**
 * Pickup latency: from a job's `routed` event to its `claimed` event, for an idle worker process
 * (the build, concurrency 1) bound to 1, 3 or 9 shards, and from one job's `succeeded` to the next
 * queued job's `claimed` on the same shard. Idle: the last job's message settled and its workspace
 * removed (the worker removes it in the background after the ack; a job arriving meanwhile shares
 * the machine's two cores with that removal, which the "next" figure shows). The first job after
 * the worker starts (cold code) is reported on its own, not among the samples. Beside it, raw JetStream: publish → a waiting pull consumer has it.
 * Times are when this process sees each event, so every figure crosses the same hops.
 */
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Intake } from "../actors/intake/intake.js";
import { loadConfig } from "../src/config.js";
import type { Logger } from "../src/logger.js";
import { connectNats } from "../src/nats/connect.js";
import { provision } from "../src/nats/provision.js";
import { route } from "../src/routing.js";
import { STREAMS, SUBJECTS, shardConsumer } from "../src/subjects.js";
import { spawnWorker } from "./procs.js";
import { percentiles, until, type Percentiles } from "./stats.js";

export { percentiles, type Percentiles };

export interface PickupResult {
  /** Raw JetStream: publish → a waiting pull consumer has the message. */
  raw: Percentiles;
  /** Idle worker, routed → claimed, by the number of shards it binds. */
  idle: Record<"1" | "3" | "9", Percentiles>;
  /** Same shard, 3 bound: one job's succeeded → the next queued job's claimed. */
  next: Percentiles;
  /** The first job after the worker started, routed → claimed (ms), by bound shards. */
  first: Record<"1" | "3" | "9", number>;
}

/** Arrival time in this process of each job's event of the given type. */
function arrivals(nc: NatsConnection, type: string): Map<string, number> {
  const seen = new Map<string, number>();
  nc.subscribe(`status.jobs.*.${type}`, { callback: (_e, m) => void seen.set(m.subject.split(".")[2]!, performance.now()) });
  return seen;
}

const wait = (check: () => boolean) => until(check, "a pickup event");

/** A repository per shard: keys routed to each of `shards` shards, found by trying. */
function keysPerShard(shards: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.filter(Boolean).length < shards; i++) {
    const k = `org/pickup-${i}`;
    const s = route("codex", k, shards).shard;
    keys[s] ??= k;
  }
  return keys;
}

export async function benchPickup(o: {
  url: string;
  env: Record<string, string>;
  dir: string;
  jobs: number;
  log: Logger;
  onProgress?: (done: number, total: number) => void;
}): Promise<PickupResult> {
  const idle: Partial<PickupResult["idle"]> = {};
  const first: Partial<PickupResult["first"]> = {};
  let next: Percentiles | undefined;
  const pairCount = Math.max(3, Math.floor(o.jobs / 2));
  const total = 3 * (o.jobs + 1) + pairCount;
  let done = 0;
  const tick = () => o.onProgress?.(++done, total);
  const nc = await connectNats({ servers: o.url, name: "bench-pickup" });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  // Raw: a consumer whose pull is already waiting gets the message this long after its publish.
  await jsm.streams.add({ name: "RAWPICK", subjects: ["rawpick.>"] });
  await jsm.consumers.add("RAWPICK", { durable_name: "p", ack_policy: AckPolicy.Explicit });
  const messages = await (await js.consumers.get("RAWPICK", "p")).consume({ max_messages: 1 });
  const raw: number[] = [];
  let sentAt = 0;
  let got = 0;
  const reader = (async () => {
    for await (const m of messages) {
      raw.push(performance.now() - sentAt);
      m.ack();
      got++;
    }
  })();
  for (let i = 0; i < o.jobs; i++) {
    sentAt = performance.now();
    await js.publish("rawpick.x", "x");
    await wait(() => got > i);
  }
  await messages.close();
  await reader;
  const rawP = percentiles(raw);

  for (const shards of [1, 3, 9]) {
    const env = { ...o.env, MOONMIND_DATA_DIR: join(o.dir, `pickup-${shards}`), MOONMIND_CODEX_SHARDS: String(shards), MOONMIND_WORKER_CONCURRENCY: "1" };
    await mkdir(env.MOONMIND_DATA_DIR, { recursive: true });
    const config = loadConfig(env);
    await provision(nc, config);
    const intake = new Intake(await connectNats({ servers: o.url, name: `pickup-intake-${shards}` }), config, o.log);
    await intake.start();
    // The worker as it is deployed: a process of its own running the build.
    const worker = spawnWorker(`pickup-w-${shards}`, { ...env, MOONMIND_WORKER_ID: `pickup-w-${shards}` }, o.dir);
    try {
      await worker.serving;
      const routed = arrivals(nc, "routed");
      const claimed = arrivals(nc, "claimed");
      const succeeded = arrivals(nc, "succeeded");
      const keys = keysPerShard(shards);
      const consumers = Array.from({ length: shards }, (_, s) => shardConsumer("codex", s));
      const workdir = loadConfig(env).workdir;
      // Idle: nothing pending or unsettled on any bound shard, and no workspace left in the workdir.
      const idleAgain = async () => {
        for (;;) {
          const infos = await Promise.all(consumers.map((c) => jsm.consumers.info(STREAMS.jobs, c)));
          const left = [...(await readdir(workdir).catch(() => [])), ...(await readdir(join(workdir, ".worker")).catch(() => []))];
          if (infos.every((i) => i.num_ack_pending === 0 && i.num_pending === 0) && left.every((n) => n === ".worker")) return;
          await new Promise((r) => setTimeout(r, 2));
        }
      };
      const samples: number[] = [];
      // Idle worker: one job at a time, each on the next shard round the ring; job 0 is the first after start.
      for (let i = 0; i <= o.jobs; i++) {
        const id = `pick-${shards}-${i}`;
        await js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: o.env.BENCH_REPO, affinityKey: keys[i % shards], instructions: "say hi" }));
        await wait(() => succeeded.has(id));
        if (i === 0) first[String(shards) as "1" | "3" | "9"] = claimed.get(id)! - routed.get(id)!;
        else samples.push(claimed.get(id)! - routed.get(id)!);
        await idleAgain();
        tick();
      }
      idle[String(shards) as "1" | "3" | "9"] = percentiles(samples);
      if (shards === 3) {
        // Back to back on one shard: the second waits queued until the first settles.
        const pairs: number[] = [];
        for (let i = 0; i < pairCount; i++) {
          const [a, b] = [`pair-${i}-a`, `pair-${i}-b`];
          for (const id of [a, b]) {
            await js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: o.env.BENCH_REPO, affinityKey: keys[0], instructions: "say hi" }));
          }
          await wait(() => succeeded.has(b));
          pairs.push(claimed.get(b)! - succeeded.get(a)!);
          await idleAgain();
          tick();
        }
        next = percentiles(pairs);
      }
    } finally {
      await worker.stop();
      await intake.stop();
    }
  }
  await nc.close();
  return { raw: rawP, idle: idle as PickupResult["idle"], next: next!, first: first as PickupResult["first"] };
}

/**
 * Raw JetStream on the same server, the floor the other figures stand on: publish to a
 * work-queue stream with 500 in flight, then one pull consumer consuming and acking them.
 */
import { AckPolicy, RetentionPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "../src/nats/connect.js";
import type { BenchContext } from "./context.js";

export interface RawResult {
  messages: number;
  publishPerSec: number;
  consumePerSec: number;
}

export async function benchRaw(ctx: BenchContext): Promise<RawResult> {
  const n = ctx.quick ? 5_000 : Number(process.env.BENCH_MESSAGES ?? 50_000);
  ctx.progress.step("raw JetStream publish and consume");
  const nc = await connectNats({ servers: ctx.url, name: "bench-raw" });
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "RAW", subjects: ["raw.>"], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add("RAW", { durable_name: "raw", ack_policy: AckPolicy.Explicit });
    const payload = JSON.stringify({ repository: "org/repo", instructions: "fix the flaky test" });
    let t = performance.now();
    for (let i = 0; i < n; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, n - i) }, () => js.publish("raw.jobs", payload)));
      ctx.progress.count(i + 500, 2 * n);
    }
    const publishPerSec = n / ((performance.now() - t) / 1_000);
    t = performance.now();
    const messages = await (await js.consumers.get("RAW", "raw")).consume();
    let seen = 0;
    for await (const m of messages) {
      m.ack();
      if (++seen % 1_000 === 0) ctx.progress.count(n + seen, 2 * n);
      if (seen === n) break;
    }
    const consumePerSec = n / ((performance.now() - t) / 1_000);
    await messages.close();
    await jsm.streams.delete("RAW");
    return { messages: n, publishPerSec, consumePerSec };
  } finally {
    await nc.close();
  }
}

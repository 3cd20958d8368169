/** pullNow: a no-wait pull over core NATS, and the JsMsg it returns acks like nats.js's own. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats } from "../../src/nats/connect.js";
import { pullNow } from "../../src/nats/pull-now.js";
import { startNatsServer, type NatsServer } from "../../src/nats/server.js";

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-pull-"));
  server = await startNatsServer({ storeDir: dir });
  nc = await connectNats({ servers: server.url, name: "pull-now" });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "P", subjects: ["p.>"] });
});

afterAll(async () => {
  await nc.close();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

async function consumer(name: string, subject: string) {
  await jsm.consumers.add("P", { durable_name: name, ack_policy: AckPolicy.Explicit, filter_subject: subject, ack_wait: 60_000_000_000 });
}

describe("pullNow", () => {
  it("answers null at once when there is nothing, and the message with its delivery info when there is", async () => {
    await consumer("a", "p.a");
    expect(await pullNow(nc, "P", "a")).toBeNull();
    await jetstream(nc).publish("p.a", JSON.stringify({ n: 1 }), { headers: undefined });
    // Stored is not yet deliverable: the consumer sees a new message a moment after the publish ack.
    const m = await pullNow(nc, "P", "a", 5_000, 1_000);
    expect(m).not.toBeNull();
    expect(m!.subject).toBe("p.a");
    expect(m!.json()).toEqual({ n: 1 });
    expect(m!.info).toMatchObject({ stream: "P", consumer: "a", deliveryCount: 1, streamSequence: m!.seq, pending: 0 });
    expect(m!.redelivered).toBe(false);
    expect(await m!.ackAck()).toBe(true);
    expect(await pullNow(nc, "P", "a")).toBeNull();
    expect((await jsm.consumers.info("P", "a")).num_ack_pending).toBe(0);
  });

  it("nak hands it back (delivered again, count 2); term ends it", async () => {
    await consumer("b", "p.b");
    await jetstream(nc).publish("p.b", "x");
    const first = await pullNow(nc, "P", "b", 5_000, 1_000);
    first!.working(); // in progress is not final
    first!.nak();
    await nc.flush();
    const again = await pullNow(nc, "P", "b", 5_000, 1_000);
    expect(again!.info.deliveryCount).toBe(2);
    expect(again!.redelivered).toBe(true);
    again!.term("done with it");
    again!.ack(); // after a final answer, nothing more is sent
    await nc.flush();
    expect(await pullNow(nc, "P", "b")).toBeNull();
    const info = await jsm.consumers.info("P", "b");
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  });

  it("rejects for a consumer that does not exist", async () => {
    await expect(pullNow(nc, "P", "nobody", 2_000)).rejects.toThrow(/no responders/);
  });
});

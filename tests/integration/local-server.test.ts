/**
 * The dev stack's own nats-server kept up (src/cli/local-server.ts), with real nats-servers: one
 * killed from outside comes back on the same port and store, with backoff while it cannot (its
 * port taken), the recorded pid following it; a client reconnects by itself; a stop during the
 * backoff ends everything.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { processAlive as alive } from "../../src/runtimes/procfs.js";
import { keepNatsServer, type KeptServer, type ServerEvent } from "../../src/cli/local-server.js";
import { connectNats } from "../../src/nats/connect.js";

let dir: string;
let kept: KeptServer | undefined;
let blocker: Server | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-local-server-"));
});

afterEach(async () => {
  await new Promise((r) => (blocker ? blocker.close(r) : r(undefined)));
  blocker = undefined;
  await kept?.stop();
  kept = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function keep(pids: number[], events: ServerEvent[]): Promise<KeptServer> {
  kept = await keepNatsServer({
    storeDir: join(dir, "nats"),
    logFile: join(dir, "nats-server.log"),
    urlFile: join(dir, "nats.url"),
    recordPid: (pid) => pids.push(pid),
    watchMs: 50,
  });
  kept.onEvent((e) => events.push(e));
  return kept;
}

const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    // It takes the port and nothing else: a client that reaches it is hung up on at once.
    const s = createServer((socket) => socket.destroy());
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });

describe("the dev stack's own nats-server", () => {
  it("comes back on the same port and store after a kill, retrying with backoff while its port is taken", async () => {
    const pids: number[] = [];
    const events: ServerEvent[] = [];
    const server = await keep(pids, events);
    const first = server.pid;
    expect(pids).toEqual([first]);
    expect(readFileSync(join(dir, "nats.url"), "utf8")).toBe(`${server.url}\n`);
    const nc = await connectNats({ servers: server.url, name: "test" });
    let reconnected = false;
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnected = true;
    })();
    try {
      await (await jetstreamManager(nc)).streams.add({ name: "KEPT", subjects: ["kept.>"] });
      await jetstream(nc).publish("kept.one", "stored before the kill");

      process.kill(first, "SIGKILL");
      await vi.waitFor(() => expect(events[0]).toMatchObject({ kind: "crashed", restartInMs: 1_000 }), { timeout: 5_000, interval: 20 });
      expect((events[0] as { why: string }).why).toMatch(new RegExp(`pid ${first}, not stopped by this launcher`));
      // The restart is a second away: take its port meanwhile.
      blocker = await listen(server.port);
      await vi.waitFor(() => expect(events[1]).toMatchObject({ kind: "crashed", restartInMs: 2_000 }), { timeout: 15_000, interval: 50 });
      expect((events[1] as { why: string }).why).toMatch(new RegExp(`could not start it again on port ${server.port}: .*address already in use`));
      await new Promise((r) => blocker!.close(r));
      blocker = undefined;

      await vi.waitFor(() => expect(events[2]).toMatchObject({ kind: "restarted", url: server.url }), { timeout: 15_000, interval: 50 });
      expect(events).toHaveLength(3);
      expect(server.pid).not.toBe(first);
      expect(alive(server.pid)).toBe(true);
      expect(pids).toEqual([first, server.pid]);
      expect(readFileSync(join(dir, "nats.url"), "utf8")).toBe(`${server.url}\n`);
      // The client found it again by itself, and the store is the same one.
      await vi.waitFor(() => expect(reconnected).toBe(true), { timeout: 15_000, interval: 50 });
      expect((await (await jetstreamManager(nc)).streams.info("KEPT")).state.messages).toBe(1);
    } finally {
      await nc.close();
    }
  }, 60_000);

  it("stops when stopped during the backoff, and removes nats.url", async () => {
    const events: ServerEvent[] = [];
    const server = await keep([], events);
    process.kill(server.pid, "SIGKILL");
    await vi.waitFor(() => expect(events[0]).toMatchObject({ kind: "crashed" }), { timeout: 5_000, interval: 20 });
    const dead = server.pid;
    await server.stop();
    expect(existsSync(join(dir, "nats.url"))).toBe(false);
    // Its port is free, and nothing took the dead one's place.
    blocker = await listen(server.port);
    expect(events).toHaveLength(1);
    expect(server.pid).toBe(dead);
  });
});

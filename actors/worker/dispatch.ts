/**
 * Taking jobs: one dispatcher for all the shards a worker binds, pulling only when it knows a
 * job is there and it can start it at once.
 *
 * - It listens on the shard subjects themselves (core NATS gets every publish that JOBS stores),
 *   so a new job marks its shard at once; a sweep every `sweepMs` marks every shard too, for what
 *   no publish announces (a redelivery after a hand-back's delay or an ack timeout).
 * - It pulls one message from a marked shard (src/nats/pull-now.ts) only while it holds a slot
 *   of the worker and one of that shard's login, and only while the login is not paused: a busy
 *   or paused worker never holds a job another worker could start.
 * - The pull answers at once: a marked shard that turns out empty (another worker took the job)
 *   costs a fraction of a millisecond, where a long poll held the only slot for a second while a
 *   job waited on another shard. After each job the shard it came from is marked again.
 * - Shards known to hold a job go first (shard-marks.ts), and only a publish seen just now makes
 *   a pull wait for the stream: a stale mark never holds the slot while a job waits elsewhere.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "../../src/logger.js";
import { pullNow } from "../../src/nats/pull-now.js";
import type { Login } from "./logins.js";
import { announcedWaitMs, tryOrder, type ShardMarks } from "./shard-marks.js";
import type { Slots } from "./slots.js";

export interface DispatchShard {
  /** The shard's consumer (`codex-shard-2`). */
  consumer: string;
  /** The shard's subject (`jobs.codex.shard.2`). */
  subject: string;
  login: Login;
}

export interface DispatcherOptions {
  nc: NatsConnection;
  stream: string;
  shards: DispatchShard[];
  workerSlots: Slots;
  signal: AbortSignal;
  /** Every shard is tried this often even with no publish seen. */
  sweepMs: number;
  log: Logger;
  /** Runs one job; both slots are released when it settles. */
  run: (login: Login, msg: JsMsg) => Promise<void>;
}

/** How long a pull after a publish seen on the subject waits for the stream to hold it. */
const ANNOUNCED_WAIT_MS = 50;
/** After a failed pull (server away, consumer missing), the shard is tried again this much later. */
const PULL_RETRY_MS = 1_000;

interface ShardState extends DispatchShard, ShardMarks {}

export class Dispatcher {
  private readonly shards: ShardState[];
  private readonly subs: Subscription[] = [];
  private wake: (() => void) | undefined;
  private next = 0;
  private sweep: NodeJS.Timeout | undefined;

  constructor(private readonly o: DispatcherOptions) {
    this.shards = o.shards.map((s) => ({ ...s, marked: true, announcedAt: undefined, known: false }));
  }

  /** Runs until the signal aborts; resolves when no pull is under way any more. */
  async run(): Promise<void> {
    const { signal } = this.o;
    for (const shard of this.shards) {
      this.subs.push(this.o.nc.subscribe(shard.subject, { callback: () => this.mark(shard, true) }));
    }
    this.sweep = setInterval(() => {
      for (const shard of this.shards) this.mark(shard, false);
    }, this.o.sweepMs);
    const onAbort = () => this.poke();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const shard = this.choose();
        if (!shard) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        await this.pullFrom(shard);
      }
    } finally {
      clearInterval(this.sweep);
      signal.removeEventListener("abort", onAbort);
      for (const sub of this.subs) sub.unsubscribe();
    }
  }

  /** Something changed (a slot freed, a login resumed): look again. */
  poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private mark(shard: ShardState, announced: boolean): void {
    shard.marked = true;
    if (announced) shard.announcedAt = performance.now();
    this.poke();
  }

  /** The next marked shard (in tryOrder) that can start a job now; its slots are taken. */
  private choose(): ShardState | undefined {
    if (this.o.workerSlots.available === 0) return undefined;
    for (const i of tryOrder(this.shards, this.next)) {
      const shard = this.shards[i]!;
      if (shard.login.paused || !shard.login.slots.tryAcquire()) continue;
      if (!this.o.workerSlots.tryAcquire()) {
        shard.login.slots.release();
        return undefined;
      }
      this.next = (i + 1) % this.shards.length;
      return shard;
    }
    return undefined;
  }

  private async pullFrom(shard: ShardState): Promise<void> {
    const release = () => {
      this.o.workerSlots.release();
      shard.login.slots.release();
      this.poke();
    };
    const waitMs = announcedWaitMs(shard.announcedAt, performance.now(), ANNOUNCED_WAIT_MS);
    shard.marked = false;
    shard.announcedAt = undefined;
    shard.known = false;
    let msg: JsMsg | null;
    try {
      msg = await pullNow(this.o.nc, this.o.stream, shard.consumer, 5_000, waitMs);
    } catch (err) {
      release();
      if (this.o.signal.aborted) return;
      this.o.log.warn({ err, consumer: shard.consumer }, "pull failed; retrying");
      setTimeout(() => this.mark(shard, false), PULL_RETRY_MS).unref();
      return;
    }
    if (!msg) {
      release();
      return;
    }
    if (this.o.signal.aborted || shard.login.paused) {
      msg.nak(); // taken while stopping or pausing: back at once, for someone who can run it
      release();
      return;
    }
    if (msg.info.pending > 0) shard.marked = shard.known = true;
    this.o.run(shard.login, msg).finally(() => {
      shard.marked = true; // the next queued job on this shard, at once
      release();
    });
  }
}

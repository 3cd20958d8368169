/**
 * One pull loop per bound shard consumer. It takes a slot of the login and one of the worker
 * before it pulls, and pulls only while the login is ready: a busy or paused worker never holds
 * a job another worker could start. Idle, it long-polls for `expiresMs` (at least 1 s).
 */
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../../src/logger.js";
import type { Login } from "./logins.js";
import type { Slots } from "./slots.js";

export interface PullLoopOptions {
  consumer: Consumer;
  name: string;
  login: Login;
  workerSlots: Slots;
  signal: AbortSignal;
  expiresMs: number;
  log: Logger;
  /** Runs one job; both slots are released when it settles. */
  run: (msg: JsMsg) => Promise<void>;
}

export async function pullLoop(o: PullLoopOptions): Promise<void> {
  const { login, signal } = o;
  while (!signal.aborted) {
    if (!(await login.whileResumed(signal))) break;
    if (!(await login.slots.acquire(signal))) break;
    if (!(await o.workerSlots.acquire(signal))) {
      login.slots.release();
      break;
    }
    const release = () => {
      o.workerSlots.release();
      login.slots.release();
    };
    if (login.paused) {
      release();
      continue;
    }
    let msg: JsMsg | null = null;
    try {
      msg = await o.consumer.next({ expires: o.expiresMs });
    } catch (err) {
      release();
      if (signal.aborted) break;
      o.log.warn({ err, consumer: o.name }, "pull failed; retrying");
      await sleep(1_000, signal);
      continue;
    }
    if (!msg) {
      release();
      continue;
    }
    if (signal.aborted) {
      msg.nak();
      release();
      break;
    }
    o.run(msg).finally(release);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

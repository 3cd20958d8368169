/**
 * Writes that must land: a finished agent's result is never answered by running the agent again,
 * so its uploads and record writes are retried while the store is away (a server restart, a
 * partition), with capped backoff, until a deadline. A compare-and-set conflict or a permanent
 * error is an answer, not an outage: it is thrown at once.
 */
import type { Logger } from "../logger.js";

export interface PersistOptions {
  /** Give up this long after the first try. */
  deadlineMs: number;
  signal?: AbortSignal | undefined;
  log?: Logger | undefined;
  baseMs?: number;
  maxMs?: number;
}

const ANSWERS = new Set(["RunConflictError", "PermanentError"]);

export function isAnswer(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return ANSWERS.has(String(e?.name)) || e?.code === "RUN_CONFLICT";
}

export async function persist<T>(what: string, write: () => Promise<T>, o: PersistOptions): Promise<T> {
  const giveUpAt = Date.now() + o.deadlineMs;
  let delay = o.baseMs ?? 250;
  for (let tries = 1; ; tries++) {
    try {
      return await write();
    } catch (err) {
      if (isAnswer(err) || o.signal?.aborted || Date.now() + delay > giveUpAt) throw err;
      o.log?.warn({ err, what, tries, retryInMs: delay }, "store write failed; retrying");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, o.maxMs ?? 5_000);
    }
  }
}

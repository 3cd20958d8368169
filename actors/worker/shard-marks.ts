/**
 * What the dispatcher knows of each shard between pulls, and the order it tries them in: pure, so
 * the choice is tested without a server or a clock.
 */

export interface ShardMarks {
  /** A job may be there: a publish was seen, a sweep came, or the last pull found more. */
  marked: boolean;
  /**
   * When a publish on the shard was last seen and not yet answered by a pull (ms, monotonic): a
   * pull soon after waits a moment for the stream to hold it; one later (the job was taken
   * meanwhile, by this worker or another) does not wait at all.
   */
  announcedAt: number | undefined;
  /** The last pull said more messages were behind the one it took. */
  known: boolean;
}

/**
 * The marked shards in the order to try them, round robin from `from`: first those known to hold
 * a job (a publish seen, or more behind the last one pulled), then those a sweep or a finished job
 * marked on the chance. A sweep over 9 shards is 9 pulls one after another; a job published
 * meanwhile does not wait behind them.
 */
export function tryOrder(shards: readonly ShardMarks[], from: number): number[] {
  const ring = shards.map((_, i) => (from + i) % shards.length).filter((i) => shards[i]!.marked);
  const likely = (i: number) => shards[i]!.announcedAt !== undefined || shards[i]!.known;
  return [...ring.filter(likely), ...ring.filter((i) => !likely(i))];
}

/** How long a pull may wait for an announced job to reach the stream: what is left of `boundMs` since the publish was seen. */
export function announcedWaitMs(announcedAt: number | undefined, now: number, boundMs: number): number {
  return announcedAt === undefined ? 0 : Math.max(0, Math.ceil(announcedAt + boundMs - now));
}

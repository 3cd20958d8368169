/**
 * Retry delays. Pure: the random source is passed in so tests and machines stay deterministic.
 * Exponential from `baseMs`, doubling per attempt, capped at `maxMs`, with up to `jitter` of
 * the delay taken off so a burst of failures does not retry in lockstep.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** 0..1: share of the delay that may be removed at random. */
  jitter?: number;
}

export function retryDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = () => 1): number {
  if (attempt < 1) return 0;
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  const jitter = Math.max(0, Math.min(1, policy.jitter ?? 0));
  return Math.round(exp - exp * jitter * (1 - random()));
}

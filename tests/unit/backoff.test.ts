import { describe, expect, it } from "vitest";
import { retryDelayMs } from "../../src/backoff.js";

describe("retryDelayMs", () => {
  const policy = { baseMs: 1_000, maxMs: 10_000 };

  it("doubles per attempt from the base", () => {
    expect([1, 2, 3, 4].map((a) => retryDelayMs(a, policy))).toEqual([1_000, 2_000, 4_000, 8_000]);
  });

  it("is capped at the maximum, even for huge attempt numbers", () => {
    expect(retryDelayMs(5, policy)).toBe(10_000);
    expect(retryDelayMs(10_000, policy)).toBe(10_000);
  });

  it("gives no delay before the first attempt", () => {
    expect(retryDelayMs(0, policy)).toBe(0);
  });

  it("jitter only ever shortens the delay, by at most its share", () => {
    const jittered = { ...policy, jitter: 0.5 };
    expect(retryDelayMs(2, jittered, () => 0)).toBe(1_000);
    expect(retryDelayMs(2, jittered, () => 1)).toBe(2_000);
    expect(retryDelayMs(2, jittered, () => 0.5)).toBe(1_500);
  });
});

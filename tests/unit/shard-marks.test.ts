/** The dispatcher's choice of shard and its wait for an announced job (actors/worker/shard-marks.ts). */
import { describe, expect, it } from "vitest";
import { announcedWaitMs, tryOrder, type ShardMarks } from "../../actors/worker/shard-marks.js";

const shard = (over: Partial<ShardMarks> = {}): ShardMarks => ({ marked: false, announcedAt: undefined, known: false, ...over });
const chance = () => shard({ marked: true });
const announced = (at = 0) => shard({ marked: true, announcedAt: at });
const known = () => shard({ marked: true, known: true });

describe("tryOrder", () => {
  it("is round robin from the given shard over the marked ones only", () => {
    const shards = [chance(), shard(), chance(), chance()];
    expect(tryOrder(shards, 0)).toEqual([0, 2, 3]);
    expect(tryOrder(shards, 3)).toEqual([3, 0, 2]);
    expect(tryOrder([shard(), shard()], 0)).toEqual([]);
  });

  it("tries a shard with a publish seen before every shard a sweep marked, wherever it is in the ring", () => {
    // A sweep marked all nine; a job is published on shard 7 while the dispatcher is at shard 1.
    const shards = Array.from({ length: 9 }, chance);
    shards[7] = announced();
    expect(tryOrder(shards, 1)).toEqual([7, 1, 2, 3, 4, 5, 6, 8, 0]);
  });

  it("counts more behind the last message pulled as known, in ring order with the announced ones", () => {
    const shards = [chance(), known(), chance(), announced(), chance()];
    expect(tryOrder(shards, 2)).toEqual([3, 1, 2, 4, 0]);
  });
});

describe("announcedWaitMs", () => {
  it("waits only for what is left of the bound since the publish was seen", () => {
    expect(announcedWaitMs(1_000, 1_000, 50)).toBe(50);
    expect(announcedWaitMs(1_000, 1_030.5, 50)).toBe(20);
  });

  it("does not wait on a stale announcement (the job was taken meanwhile) or none", () => {
    expect(announcedWaitMs(1_000, 1_050, 50)).toBe(0);
    expect(announcedWaitMs(1_000, 9_000, 50)).toBe(0);
    expect(announcedWaitMs(undefined, 1_000, 50)).toBe(0);
  });
});

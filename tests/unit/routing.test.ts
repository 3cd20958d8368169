import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { normalizeRepository, route, routingKey, shardFor } from "../../src/routing.js";

describe("normalizeRepository", () => {
  it.each([
    ["org/repo", "org/repo"],
    ["Org/Repo", "org/repo"],
    ["https://github.com/Org/Repo.git", "org/repo"],
    ["https://github.com/org/repo/", "org/repo"],
    ["http://github.com:8080/org/repo", "org/repo"],
    ["git@github.com:org/repo", "org/repo"],
    ["git@github.com:Org/Repo.git", "org/repo"],
    ["ssh://git@github.com/org/repo.git", "org/repo"],
    ["ssh://git@github.com:2222/org/repo", "org/repo"],
    ["git://github.com/org/repo", "org/repo"],
    ["https://gitlab.example.com/group/sub/repo.git", "group/sub/repo"],
    ["org//repo", "org/repo"],
    ["file:///srv/git/Repo.git", "srv/git/repo"],
    ["/srv/git/repo/", "srv/git/repo"],
  ])("%s → %s", (input, expected) => {
    expect(normalizeRepository(input)).toBe(expected);
  });

  it("routes every spelling of one repository to the same shard", () => {
    const spellings = ["https://github.com/Org/Repo.git", "git@github.com:org/repo", "org/repo", "ORG/REPO/"];
    const shards = new Set(spellings.map((s) => route("codex", s, 7).shard));
    expect(shards.size).toBe(1);
  });
});

describe("shardFor", () => {
  it("is the first 8 bytes of sha256, big-endian, mod the shard count", () => {
    const digestPrefix = BigInt("0x" + sha256Hex("org/repo").slice(0, 16));
    for (const n of [1, 2, 3, 7, 64]) expect(shardFor("org/repo", n)).toBe(Number(digestPrefix % BigInt(n)));
  });

  it("is stable: the same key gives the same shard on every call", () => {
    const first = Array.from({ length: 100 }, (_, i) => shardFor(`org/repo-${i}`, 3));
    const again = Array.from({ length: 100 }, (_, i) => shardFor(`org/repo-${i}`, 3));
    expect(again).toEqual(first);
  });

  it("spreads 10,000 repositories within ±10% of even across 3 shards", () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 10_000; i++) counts[shardFor(normalizeRepository(`org-${i % 97}/repo-${i}`), 3)]!++;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(10_000 / 3 * 0.9);
      expect(c).toBeLessThanOrEqual(10_000 / 3 * 1.1);
    }
  });

  it("refuses a shard count below 1", () => {
    expect(() => shardFor("x", 0)).toThrow(RangeError);
  });
});

describe("route", () => {
  it("uses the affinity key instead of the repository when given", () => {
    expect(routingKey("org/repo", "team-a")).toBe("team-a");
    expect(route("claude", "org/other", 5, "team-a").shard).toBe(route("claude", "org/repo", 5, "team-a").shard);
  });

  it("names the subject and the durable consumer of the shard", () => {
    const r = route("codex", "org/repo", 3);
    expect(r.subject).toBe(`jobs.codex.shard.${r.shard}`);
    expect(r.consumer).toBe(`codex-shard-${r.shard}`);
  });
});

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

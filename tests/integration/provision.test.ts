/** Provisioning is idempotent and creates exactly what the contract names. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { provision } from "../../src/nats/provision.js";
import { startStack, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
beforeAll(async () => {
  stack = await startStack(); // provisions once
});
afterAll(async () => stack?.stop());

describe("provision", () => {
  it("changes nothing when run again", async () => {
    const before = await Promise.all(["JOBS", "STATUS", "LOGS", "DEAD", "KV_runs", "KV_workers", "KV_auth_locks", "OBJ_artifacts"].map((s) => stack.jsm.streams.info(s)));
    const report = await provision(stack.nc, stack.config());
    expect(report.created).toEqual([]);
    expect(report.updated).toEqual([]);
    // 4 streams, 6 consumers (intake, 3 codex, 1 claude, 1 gemini), 3 KV buckets, 1 object store
    expect(report.unchanged).toHaveLength(4 + 6 + 3 + 1);
    const after = await Promise.all(before.map((s) => stack.jsm.streams.info(s.config.name)));
    expect(after.map((s) => s.config)).toEqual(before.map((s) => s.config));
  });

  it("creates the streams, consumers and buckets the contract names", async () => {
    const jobs = await stack.jsm.streams.info("JOBS");
    expect(jobs.config).toMatchObject({ subjects: ["jobs.submit", "jobs.*.shard.*"], retention: "workqueue", storage: "file" });
    expect(jobs.config.duplicate_window).toBeGreaterThanOrEqual(600 * 1e9);
    const consumers: string[] = [];
    for await (const c of stack.jsm.consumers.list("JOBS")) consumers.push(c.name);
    expect(consumers.sort()).toEqual(["claude-shard-0", "codex-shard-0", "codex-shard-1", "codex-shard-2", "gemini-shard-0", "intake"]);
    const shard = await stack.jsm.consumers.info("JOBS", "codex-shard-1");
    expect(shard.config).toMatchObject({ filter_subject: "jobs.codex.shard.1", ack_policy: "explicit", max_deliver: 20 });
    expect((await stack.jsm.streams.info("STATUS")).config).toMatchObject({ subjects: ["status.>"], max_age: 7 * 86_400 * 1e9 });
    expect((await stack.jsm.streams.info("LOGS")).config).toMatchObject({ subjects: ["logs.jobs.*"], max_age: 86_400 * 1e9 });
    expect((await stack.jsm.streams.info("DEAD")).config).toMatchObject({ subjects: ["dead.jobs.*"] });
  });

  it("applies a changed setting by update, and adds the consumers of new shards", async () => {
    const report = await provision(stack.nc, stack.config({ MOONMIND_ACK_WAIT_MS: "45000", MOONMIND_CLAUDE_SHARDS: "2" }));
    expect(report.created).toEqual(["consumer JOBS/claude-shard-1"]);
    expect(report.updated).toContain("consumer JOBS/codex-shard-0");
    expect((await stack.jsm.consumers.info("JOBS", "codex-shard-0")).config.ack_wait).toBe(45_000 * 1e6);
  });
});

/** `npm run demo` as a person runs it: three real CLIs, one patch each, everything stopped after. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../../src/cli/bin.mjs");
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-demo-"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("moonmind demo", () => {
  it("runs one job per runtime with the real CLIs and prints each changes.patch", async () => {
    const r = await execa(process.execPath, [BIN, "demo", "--timeout", "120"], {
      env: { ...process.env, MOONMIND_DATA_DIR: dir, MOONMIND_LOG_LEVEL: "warn", MOONMIND_VIZ_PORT: "0" },
      reject: false,
      timeout: 150_000,
      stdin: "ignore",
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/scripted stand-in for the vendors' model APIs/);
    for (const runtime of ["codex", "claude", "gemini"]) {
      expect(r.stdout).toMatch(new RegExp(`===== ${runtime}: succeeded`));
      expect(r.stdout).toContain(`+notes written by the ${runtime} CLI`);
      expect(r.stdout).toContain(`+++ b/docs/${runtime}.md`);
    }
    expect(r.stdout).toMatch(/demo: all three runtimes succeeded/);
  }, 160_000);
});

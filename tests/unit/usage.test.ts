/** What each CLI reports using, read from its own output lines, and a run's usage kept per attempt. */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createAdapter } from "../../src/runtimes/index.js";
import { addUsage, totalUsage, withAttemptUsage } from "../../src/runs/usage.js";
import type { RunRecord } from "../../src/schemas/run.js";
import { redactText } from "../../src/secrets.js";

const usageOf = (runtime: "codex" | "claude" | "gemini", line: string) =>
  createAdapter(runtime, loadConfig({})).createParser()(line).filter((e) => e.kind === "usage");

describe("usage as the CLIs report it", () => {
  it("codex: turn.completed's usage, one turn", () => {
    const line = '{"type":"turn.completed","usage":{"input_tokens":1234,"cached_input_tokens":1000,"output_tokens":56}}';
    expect(usageOf("codex", line)).toEqual([{ kind: "usage", usage: { inputTokens: 1234, cachedInputTokens: 1000, outputTokens: 56, turns: 1 } }]);
  });

  it("claude: the result's usage, turns, models and cost; cache writes count as input", () => {
    const line = JSON.stringify({
      type: "result", subtype: "success", is_error: false, num_turns: 3, result: "done", total_cost_usd: 0.0421,
      usage: { input_tokens: 40, cache_creation_input_tokens: 10, cache_read_input_tokens: 900, output_tokens: 75 },
      modelUsage: { "claude-sonnet-4-5": { inputTokens: 40 } },
    });
    expect(usageOf("claude", line)).toEqual([
      { kind: "usage", usage: { inputTokens: 50, cachedInputTokens: 900, outputTokens: 75, turns: 3, model: "claude-sonnet-4-5", costUsd: 0.0421 } },
    ]);
  });

  it("gemini: the result's stats, cached tokens taken out of the prompt", () => {
    const line = JSON.stringify({ type: "result", status: "success", stats: { total_tokens: 160, input_tokens: 120, output_tokens: 40, cached: 20, tool_calls: 1, models: { "gemini-2.5-flash": {} } } });
    expect(usageOf("gemini", line)).toEqual([{ kind: "usage", usage: { inputTokens: 100, cachedInputTokens: 20, outputTokens: 40, model: "gemini-2.5-flash" } }]);
  });

  it("keeps token counts in logs: they are numbers, not secrets", () => {
    const line = '{"type":"turn.completed","usage":{"input_tokens":1234,"cached_input_tokens":0,"output_tokens":56}}';
    expect(redactText(line)).toBe(line);
  });
});

describe("a run's usage", () => {
  const record = { usage: undefined } as unknown as RunRecord;

  it("sums one attempt's reports and names the job's model when the CLI names none", () => {
    const a = addUsage(undefined, { inputTokens: 10, cachedInputTokens: 1, outputTokens: 2, turns: 1 }, "gpt-5-codex");
    expect(addUsage(a, { inputTokens: 5, cachedInputTokens: 0, outputTokens: 3, turns: 1 })).toEqual({
      inputTokens: 15, cachedInputTokens: 1, outputTokens: 5, turns: 2, model: "gpt-5-codex",
    });
  });

  it("keeps one entry per attempt, however often a write is retried, and totals them", () => {
    const once = withAttemptUsage(record, 1, { inputTokens: 10, cachedInputTokens: 0, outputTokens: 1, costUsd: 0.01 });
    const again = withAttemptUsage(once, 1, { inputTokens: 10, cachedInputTokens: 0, outputTokens: 1, costUsd: 0.01 });
    const second = withAttemptUsage(again, 2, { inputTokens: 7, cachedInputTokens: 3, outputTokens: 2, costUsd: 0.02 });
    expect(second.usage?.map((u) => u.attempt)).toEqual([1, 2]);
    expect(totalUsage(second)).toEqual({ inputTokens: 17, cachedInputTokens: 3, outputTokens: 3, costUsd: 0.03 });
  });
});

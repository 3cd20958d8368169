/** Usage-limit answers as the pinned CLIs print them (measured against a local 429; docs/runtimes.md). */
import { describe, expect, it } from "vitest";
import { claudeUsageLimit, codexUsageLimit, geminiUsageLimit } from "../../src/runtimes/usage-limit.js";

const codexError = (message: string) => JSON.stringify({ type: "error", message });
const LIMIT = "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again";

describe("codex", () => {
  const now = new Date(2026, 11, 3, 7, 41, 10); // local time, as the CLI prints it

  it("reads a reset later today, a minute's margin added", () => {
    expect(codexUsageLimit(codexError(`${LIMIT} at 7:42 AM.`), now)?.resetsAt).toEqual(new Date(2026, 11, 3, 7, 43));
    expect(codexUsageLimit(codexError(`${LIMIT} at 2:05 PM.`), now)?.resetsAt).toEqual(new Date(2026, 11, 3, 14, 6));
  });

  it("takes a clock time already past as tomorrow's", () => {
    expect(codexUsageLimit(codexError(`${LIMIT} at 7:00 AM.`), now)?.resetsAt).toEqual(new Date(2026, 11, 4, 7, 1));
    expect(codexUsageLimit(codexError(`${LIMIT} at 12:30 AM.`), now)?.resetsAt).toEqual(new Date(2026, 11, 4, 0, 31));
  });

  it("reads a reset days away", () => {
    expect(codexUsageLimit(codexError(`${LIMIT} at Dec 6th, 2026 8:42 AM.`), now)?.resetsAt).toEqual(new Date(2026, 11, 6, 8, 43));
  });

  it("knows a limit with no reset, the free plan's wording and an API key out of quota", () => {
    expect(codexUsageLimit(codexError(`${LIMIT} later.`), now)).toEqual({ evidence: `${LIMIT} later.` });
    const free = "You’ve hit your usage limit. Upgrade to Plus to continue using Codex (https://chatgpt.com/explore/plus), or try again at 7:43 AM.";
    expect(codexUsageLimit(codexError(free), now)?.resetsAt).toEqual(new Date(2026, 11, 3, 7, 44));
    expect(codexUsageLimit(codexError("Quota exceeded. Check your plan and billing details."), now)?.resetsAt).toBeUndefined();
    expect(codexUsageLimit(codexError("Quota exceeded. Check your plan and billing details."), now)).toBeDefined();
  });

  it("is not fooled by other errors, by retries it is still making, or by the words in agent output", () => {
    expect(codexUsageLimit(codexError("Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)"), now)).toBeUndefined();
    expect(codexUsageLimit(codexError("To use Codex with your ChatGPT plan, upgrade to Plus: https://chatgpt.com/explore/plus."), now)).toBeUndefined();
    expect(codexUsageLimit(JSON.stringify({ type: "item.completed", item: { type: "agent_message", text: LIMIT } }), now)).toBeUndefined();
    expect(codexUsageLimit(`${LIMIT} at 7:42 AM.`, now)).toBeUndefined();
  });
});

describe("claude", () => {
  it("reads the reset from a rejected rate_limit_event", () => {
    const line = JSON.stringify({ type: "rate_limit_event", rate_limit_info: { status: "rejected", resetsAt: 1796283894, rateLimitType: "five_hour" } });
    expect(claudeUsageLimit(line)).toEqual({ evidence: "claude's usage limit was reached (five_hour)", resetsAt: new Date(1796283894 * 1000) });
  });

  it("knows a 429 result without a reset, and ignores allowed rate-limit events and other errors", () => {
    const result = JSON.stringify({ type: "result", subtype: "success", is_error: true, api_error_status: 429, result: "API Error: Request rejected (429) · try again later." });
    expect(claudeUsageLimit(result)).toEqual({ evidence: "API Error: Request rejected (429) · try again later." });
    expect(claudeUsageLimit(JSON.stringify({ type: "rate_limit_event", rate_limit_info: { status: "allowed", resetsAt: 1 } }))).toBeUndefined();
    const throttled = { type: "result", is_error: true, api_error_status: 429, result: "API Error: Server is temporarily limiting requests (not your usage limit)" };
    expect(claudeUsageLimit(JSON.stringify(throttled))).toBeUndefined();
    expect(claudeUsageLimit(JSON.stringify({ type: "result", is_error: true, api_error_status: 401, result: "Invalid API key" }))).toBeUndefined();
  });
});

describe("gemini", () => {
  it("knows RESOURCE_EXHAUSTED and reads its retry delay", () => {
    const now = new Date("2026-12-03T08:00:00Z");
    const line = '{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[{"retryDelay":"30s"}]}}';
    expect(geminiUsageLimit(line, now)).toEqual({ evidence: "You exceeded your current quota", resetsAt: new Date("2026-12-03T08:00:30Z") });
    expect(geminiUsageLimit("  message: 'You exceeded your current quota, please check your plan and billing details.',", now)).toEqual({
      evidence: "You exceeded your current quota, please check your plan and billing details.",
    });
    expect(geminiUsageLimit("all good", now)).toBeUndefined();
    // The agent's own tool output, however it is worded, is no limit; the CLI's verdict is.
    const tool = JSON.stringify({ type: "tool_result", status: "success", output: "Error: RESOURCE_EXHAUSTED: You exceeded your current quota" });
    expect(geminiUsageLimit(tool, now)).toBeUndefined();
    const verdict = JSON.stringify({ type: "result", status: "error", error: { type: "Error", message: "[API Error: You exceeded your current quota, please check your plan and billing details.]" } });
    expect(geminiUsageLimit(verdict, now)?.evidence).toMatch(/exceeded your current quota/);
  });
});

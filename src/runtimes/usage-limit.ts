/**
 * How each pinned CLI says its plan's usage limit (or a rate limit it gave up on) was reached,
 * and when it resets — measured against a local endpoint answering 429 (docs/runtimes.md,
 * "Usage limits"). One line of the CLI's output in, a UsageLimit or nothing out.
 */
import { parseJson } from "../json.js";
import type { UsageLimit } from "./types.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `7:42 AM` (local) as the next such moment after `now`, a minute's margin added (the CLI rounds down). */
function nextClockTime(hours: number, minutes: number, meridiem: string, now: Date): Date {
  const h = (hours % 12) + (meridiem.toUpperCase() === "PM" ? 12 : 0);
  const at = new Date(now);
  at.setHours(h, minutes + 1, 0, 0);
  if (at.getTime() <= now.getTime()) at.setDate(at.getDate() + 1);
  return at;
}

/**
 * codex 0.169.0 answers `usage_limit_reached` at once (no retry) with an `error` and a
 * `turn.failed` event: "You’ve hit your usage limit. … try again at 7:42 AM." — the reset in the
 * CLI's local time (its TZ is the worker's), "at Dec 6th, 2026 8:42 AM" when it is days away, or
 * "later" when the answer gave none. "Quota exceeded. Check your plan and billing details." is an
 * API account out of quota (no reset).
 */
export function codexUsageLimit(line: string, now: Date): UsageLimit | undefined {
  const event = parseJson(line) as { type?: unknown; message?: unknown; error?: { message?: unknown } } | undefined;
  if (!event || event.type !== "error" || typeof event.message !== "string") return undefined;
  const text = event.message;
  if (/^Quota exceeded\. Check your plan and billing details/.test(text)) return { evidence: text };
  if (!/hit your usage limit/i.test(text)) return undefined;
  const dated = /try again at ([A-Z][a-z]{2}) (\d{1,2})(?:st|nd|rd|th)?, (\d{4}) (\d{1,2}):(\d{2}) ([AP]M)/.exec(text);
  if (dated) {
    const month = MONTHS.indexOf(dated[1]!);
    const h = (Number(dated[4]) % 12) + (dated[6] === "PM" ? 12 : 0);
    if (month >= 0) return { evidence: text, resetsAt: new Date(Number(dated[3]), month, Number(dated[2]), h, Number(dated[5]) + 1) };
  }
  const clock = /try again at (\d{1,2}):(\d{2}) ([AP]M)/.exec(text);
  if (clock) return { evidence: text, resetsAt: nextClockTime(Number(clock[1]), Number(clock[2]), clock[3]!, now) };
  return { evidence: text };
}

/**
 * claude 2.1.197 under stream-json: a subscription login's limit comes first as a
 * `rate_limit_event` with `rate_limit_info.status: "rejected"` and `resetsAt` (epoch seconds),
 * then a synthetic assistant message ("You've hit your session limit · resets 7:44am (UTC)") and a
 * `result` with `is_error: true, api_error_status: 429`; an API key's 429 gives only the last two
 * ("Request rejected (429) · … try again later"), with no reset.
 */
export function claudeUsageLimit(line: string): UsageLimit | undefined {
  const event = parseJson(line) as
    | { type?: unknown; rate_limit_info?: { status?: unknown; resetsAt?: unknown; rateLimitType?: unknown }; api_error_status?: unknown; is_error?: unknown; result?: unknown }
    | undefined;
  if (!event) return undefined;
  if (event.type === "rate_limit_event" && event.rate_limit_info?.status === "rejected") {
    const resetsAt = typeof event.rate_limit_info.resetsAt === "number" ? new Date(event.rate_limit_info.resetsAt * 1000) : undefined;
    const kind = typeof event.rate_limit_info.rateLimitType === "string" ? ` (${event.rate_limit_info.rateLimitType})` : "";
    return { evidence: `claude's usage limit was reached${kind}`, ...(resetsAt ? { resetsAt } : {}) };
  }
  if (event.type === "result" && event.is_error === true && event.api_error_status === 429) {
    const text = typeof event.result === "string" ? event.result : "the model API answered 429";
    // A subscriber's 429 without the plan's headers is the service throttling, which it says is not the limit.
    if (/not your usage limit/i.test(text)) return undefined;
    return { evidence: text };
  }
  return undefined;
}

/**
 * gemini 0.61.0 retries a 429 it deems retryable up to 10 times (5–30 s apart, minutes in all) and
 * gives up at once on a terminal one — a daily quota (`QuotaFailure` with a `PerDay` quota id), a
 * delay over its bound, "limit: 0" — printing the API's `RESOURCE_EXHAUSTED` error on stderr
 * ("message: 'You exceeded your current quota…'"); a `retryDelay` ("30s") when RetryInfo came with it.
 */
export function geminiUsageLimit(line: string, now: Date): UsageLimit | undefined {
  // Its stream-json events carry the agent's own tool output too: of those only the CLI's own
  // verdict (`result` / `error`) counts, so an agent printing the words cannot pause its login.
  const event = parseJson(line) as { type?: unknown; status?: unknown; error?: { message?: unknown }; message?: unknown } | undefined;
  if (event !== undefined && event !== null && typeof event === "object" && typeof event.type === "string") {
    const verdict = event.type === "result" && event.status === "error" ? event.error?.message : event.type === "error" ? event.message : undefined;
    if (typeof verdict !== "string") return undefined;
    line = verdict;
  }
  if (!/RESOURCE_EXHAUSTED|TerminalQuotaError|exceeded your current quota|exhausted your daily quota|Quota exceeded for/i.test(line)) return undefined;
  const delay = /retryDelay"?\s*[:=]\s*"?(\d+(?:\.\d+)?)s|retry in (\d+(?:\.\d+)?)\s*s/i.exec(line);
  const seconds = delay ? Number(delay[1] ?? delay[2]) : undefined;
  // The error as JSON (`"message":"…"`), as Node prints an object (`message: '…'`), or the line.
  const evidence = (/"message"\s*:\s*"([^"]{1,300})/.exec(line)?.[1] ?? /\bmessage: '([^']{1,300})'/.exec(line)?.[1] ?? line.trim()).slice(0, 300);
  return { evidence, ...(seconds !== undefined ? { resetsAt: new Date(now.getTime() + Math.ceil(seconds) * 1000) } : {}) };
}

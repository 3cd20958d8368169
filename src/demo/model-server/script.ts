/**
 * The script the stand-in "model" follows: directives in the job prompt, one per line:
 *   write <path>: <text>   a tool call that creates/overwrites <path> (relative to the cwd) with "<text>\n"
 *   run <command>          a tool call that runs a shell command (e.g. `run sleep 3` for a long job)
 *   say <text>             the final assistant message (default "done")
 * Which step a request is at is read from the conversation it carries (how many tool results it
 * already holds), never from server state, so concurrent runs cannot interfere.
 */
import { posix } from "node:path";

export type Step = { kind: "write"; path: string; text: string } | { kind: "run"; command: string };

export interface Script {
  steps: Step[];
  say: string;
}

export function parseScript(prompt: string): Script {
  const script: Script = { steps: [], say: "done" };
  for (const line of prompt.split("\n").map((l) => l.trim())) {
    let m: RegExpExecArray | null;
    if ((m = /^write (.+?): (.*)$/.exec(line))) script.steps.push({ kind: "write", path: m[1] ?? "", text: m[2] ?? "" });
    else if ((m = /^run (.+)$/.exec(line))) script.steps.push({ kind: "run", command: m[1] ?? "" });
    else if ((m = /^say (.*)$/.exec(line))) script.say = m[1] ?? "";
  }
  return script;
}

/** The shell command a step runs. */
export function stepCommand(step: Step): string {
  return step.kind === "write" ? writeCommand(step.path, step.text) : step.command;
}

/** POSIX single-quoting: safe for any text without NUL. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The shell command for `write`: printf, not echo, so `-n`, `\n` and `%` in the text stay literal. */
export function writeCommand(path: string, text: string): string {
  const dir = posix.dirname(path);
  const mkdir = dir === "." || dir === "/" ? "" : `mkdir -p -- ${shQuote(dir)} && `;
  return `${mkdir}printf '%s\\n' ${shQuote(text)} > ${shQuote(path)}`;
}

/** One entry of a conversation, whatever the vendor's shape. "context" = developer/system items. */
export interface Turn {
  role: "user" | "model" | "context";
  texts: string[];
  toolResults: number;
}
export type Move = Step | { kind: "say"; text: string };

// The CLIs put their own context (environment, reminders, skills) into the opening user turn next
// to the job prompt; the prompt is the last user text there that is not such a block.
const INJECTED =
  /^\s*(<(system-reminder|environment_context|session_context|user_instructions)\b|# AGENTS\.md instructions)/;

/**
 * Step n of the latest prompt (n = tool results since it): the n-th step while steps remain, then
 * its final message. The latest prompt is the last user text that is not the CLI's own context nor
 * a tool result: the job's prompt in a fresh conversation, the follow-up's in a resumed one.
 */
export function nextMove(turns: Turn[]): Move {
  const isPrompt = (t: Turn) => t.role === "user" && t.toolResults === 0 && t.texts.some((x) => !INJECTED.test(x));
  const at = turns.findLastIndex(isPrompt);
  const from = at < 0 ? 0 : turns.findLastIndex((t, i) => i < at && t.role === "model") + 1;
  const upTo = turns.findIndex((t, i) => i > at && t.role === "model");
  const opening = turns.slice(from, upTo < 0 ? turns.length : upTo);
  const userTexts = opening.filter((t) => t.role === "user").flatMap((t) => t.texts);
  const script = parseScript(userTexts.filter((t) => !INJECTED.test(t)).at(-1) ?? "");
  const step = script.steps[turns.slice(Math.max(at, 0)).reduce((n, t) => n + t.toolResults, 0)];
  return step ?? { kind: "say", text: script.say };
}

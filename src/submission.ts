/**
 * Turns the bytes of one `jobs.submit` message into a canonical JobRequest or a readable
 * rejection. Pure and total: any input gives one of the two, never a throw.
 *
 * The order matters: size, UTF-8, then one linear scan of the JSON text (depth, duplicate keys,
 * `__proto__`, the top-level id) before JSON.parse and before anything walks the value, so no
 * input can overflow a stack or take time out of proportion to its size.
 */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import { checkRepository } from "./repository.js";
import { displayKey, fieldPath, findSecret, redact, redactText, secretValueKind } from "./secrets.js";
import { JobRequestSchema, JobSubmissionSchema, type JobRequest } from "./schemas/job.js";
import { IdSchema, RUNTIMES, type Runtime } from "./schemas/runtime.js";

export interface SubmissionOptions {
  maxPayloadBytes: number;
  defaultRuntime: Runtime;
  allowLocalRepos: boolean;
  newId?: () => string;
}

export type SubmissionResult =
  | { ok: true; job: JobRequest }
  | {
      ok: false;
      jobId: string;
      reason: string;
      field?: string;
      /** The message as kept for operators: parsed and redacted, or redacted text; truncated when oversized. */
      original: unknown;
      truncated?: boolean;
    };

/** Objects and arrays nested deeper than this are refused before anything walks them. */
export const MAX_JSON_DEPTH = 32;
/** How much of an unparseable or oversized payload is kept (as redacted text). */
const KEEP_BYTES = 4_096;
/** A parsed copy longer than this when serialized is kept as truncated text instead. */
const KEEP_COPY_CHARS = 64 * 1_024;
const MAX_REPOSITORY_CHARS = 2_048;

export function newJobId(): string {
  return randomUUID();
}

export function parseSubmission(data: Uint8Array, opts: SubmissionOptions): SubmissionResult {
  const newId = opts.newId ?? newJobId;
  try {
    return judge(data, opts, newId);
  } catch (err) {
    // Nothing above should throw; if something does, the input still gets its verdict.
    const e = err instanceof Error ? err : new Error(String(err));
    return {
      ok: false,
      jobId: newId(),
      reason: `intake could not judge this payload (${e.name}: ${redactText(e.message.slice(0, 200))}); an operator can inspect the copy on DEAD`,
      original: safeTextCopy(data),
      truncated: true,
    };
  }
}

function safeTextCopy(data: Uint8Array): string {
  try {
    return keptText(lossy(data.subarray(0, KEEP_BYTES + 256)));
  } catch {
    return "(not kept)";
  }
}

function lossy(data: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(data);
}

/** An id fit to name subjects and keys: valid, and not itself secret-shaped (it would be echoed everywhere). */
function usableId(id: unknown): string | undefined {
  return typeof id === "string" && IdSchema.safeParse(id).success && secretValueKind(id) === undefined ? id : undefined;
}

/**
 * The first KEEP_BYTES of a text, redacted. Redacted with some text past the cut first, so a
 * secret that straddles the cut is still recognised whole and never kept in part.
 */
function keptText(text: string): string {
  return redactText(text.slice(0, KEEP_BYTES + 256)).slice(0, KEEP_BYTES);
}

function judge(data: Uint8Array, opts: SubmissionOptions, newId: () => string): SubmissionResult {
  const textReject = (jobId: string | undefined, reason: string, text: string, field?: string, truncated = text.length > KEEP_BYTES): SubmissionResult => ({
    ok: false,
    jobId: jobId ?? newId(),
    reason,
    ...(field === undefined ? {} : { field }),
    original: keptText(text),
    ...(truncated ? { truncated: true } : {}),
  });

  if (data.byteLength > opts.maxPayloadBytes) {
    const head = lossy(data.subarray(0, KEEP_BYTES + 256));
    const reason = `payload is ${data.byteLength} bytes; the limit is ${opts.maxPayloadBytes} (MOONMIND_MAX_PAYLOAD_BYTES). Put large inputs in the repository instead`;
    return textReject(usableId(scanJson(head).topId), reason, head, undefined, true);
  }

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    const replaced = lossy(data);
    return textReject(usableId(scanJson(replaced).topId), "payload is not valid UTF-8 text; send the job as UTF-8 JSON", replaced);
  }

  const scan = scanJson(text);
  const problem = scan.problem;
  if (problem?.kind === "too-deep") {
    const where = fieldPath(problem.path) || "(root)";
    return textReject(
      usableId(scan.topId),
      `payload nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep (at '${where}'); flatten it`,
      text,
      where,
    );
  }
  if (problem?.kind === "duplicate" || problem?.kind === "forbidden-key") {
    const where = fieldPath(problem.path);
    const reason =
      problem.kind === "duplicate"
        ? `key '${where}' is given more than once; give each key once (readers disagree on which one counts)`
        : `key '${where}' is not allowed`;
    return textReject(usableId(scan.topId), reason, text, where);
  }

  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return textReject(usableId(scan.topId), `payload is not valid JSON (${parseErrorMessage(err)})`, text);
  }
  if (problem?.kind === "invalid") {
    // JSON.parse took what the scanner refused: trust neither, refuse it.
    return textReject(usableId(scan.topId), `payload is not valid JSON (unexpected character at position ${problem.at})`, text);
  }

  // The scan found no duplicate keys, so a top-level `id` is the only one.
  const maybeId = isPlainObject(raw) ? raw.id : undefined;
  const jobId = usableId(maybeId) ?? newId();
  const reject = (reason: string, field?: string): SubmissionResult => ({
    ok: false,
    jobId,
    reason,
    ...(field === undefined ? {} : { field }),
    ...keptCopy(raw),
  });

  if (!isPlainObject(raw)) {
    return reject("payload must be a JSON object such as {\"repository\":\"org/repo\",\"instructions\":\"...\"}");
  }

  // Before anything else: a secret must never travel further, nor be echoed back.
  const secret = findSecret(raw);
  if (secret) {
    return reject(
      `field '${secret.field}' looks like a secret (${secret.why}); jobs must not carry credentials. ` +
        "Log the agent CLI in on the worker's auth volume instead (tools/auth-<runtime>-volume.sh)",
      secret.field,
    );
  }

  const sub = JobSubmissionSchema.safeParse(raw);
  if (!sub.success) return reject(...describe(sub.error));
  const s = sub.data;

  if (s.id === undefined && maybeId !== undefined) return reject("id: use only letters, digits, '_' and '-'", "id");
  const repository = s.repository ?? s.repo;
  if (repository === undefined) return reject("repository is required (alias: repo), e.g. \"org/repo\"", "repository");
  if (s.repository !== undefined && s.repo !== undefined && s.repository !== s.repo) {
    return reject("repository and repo disagree; give one of them", "repository");
  }
  if (repository.length > MAX_REPOSITORY_CHARS) return reject(`repository is longer than ${MAX_REPOSITORY_CHARS} characters`, "repository");
  const repoCheck = checkRepository(repository, opts.allowLocalRepos);
  if (!repoCheck.ok) return reject(`repository ${repoCheck.reason}`, "repository");

  const task: Record<string, unknown> = { ...(s.task ?? {}) };
  if (s.instructions !== undefined) {
    if (task.instructions !== undefined && task.instructions !== s.instructions) {
      return reject("instructions and task.instructions disagree; give one of them", "instructions");
    }
    task.instructions = s.instructions;
  }
  for (const part of ["git", "runtime"] as const) {
    if (task[part] !== undefined && !isPlainObject(task[part])) return reject(`task.${part}: expected an object`, `task.${part}`);
  }
  if (s.ref !== undefined) task.git = { ...(task.git as object | undefined), startingBranch: s.ref };
  const taskRuntime = { ...(task.runtime as Record<string, unknown> | undefined) };
  if (s.model !== undefined) taskRuntime.model = s.model;

  // Precedence: task.runtime.mode › targetRuntime › runtime (short form) › the deployment default.
  const chosen = taskRuntime.mode ?? s.targetRuntime ?? s.runtime ?? opts.defaultRuntime;
  if (typeof chosen !== "string" || !(RUNTIMES as readonly string[]).includes(chosen)) {
    const field = taskRuntime.mode !== undefined ? "task.runtime.mode" : s.targetRuntime !== undefined ? "targetRuntime" : "runtime";
    const shown = typeof chosen === "string" ? `'${redactText(chosen.slice(0, 40))}'` : `of type ${typeof chosen}`;
    return reject(`unknown runtime ${shown}; expected one of ${RUNTIMES.join(", ")}`, field);
  }
  taskRuntime.mode = chosen;
  task.runtime = taskRuntime;

  const canonical = JobRequestSchema.safeParse({
    id: jobId,
    type: "task",
    repository,
    targetRuntime: chosen,
    affinityKey: s.affinityKey,
    priority: s.priority,
    maxAttempts: s.maxAttempts,
    task,
    metadata: s.metadata,
  });
  if (!canonical.success) return reject(...describe(canonical.error));
  return { ok: true, job: canonical.data };
}

/** JSON.parse's message without the piece of the input V8 quotes (`Unexpected token 's', "sk-…" is not valid JSON`). */
function parseErrorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return JSON.stringify(message.replace(/, ".*$/s, "").slice(0, 200)).slice(1, -1);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The redacted copy kept on DEAD, as a value when it is small enough, else as truncated text. */
function keptCopy(raw: unknown): { original: unknown; truncated?: boolean } {
  const copy = redact(raw);
  const text = JSON.stringify(copy) ?? "";
  return text.length <= KEEP_COPY_CHARS ? { original: copy } : { original: text.slice(0, KEEP_COPY_CHARS), truncated: true };
}

/** The first issue as a readable reason naming its field; keys are shown with displayKey, never whole when secret-shaped. */
function describe(error: z.ZodError): [string, string | undefined] {
  const issue = error.issues[0];
  if (!issue) return ["invalid job request", undefined];
  const path = fieldPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    const shown = issue.keys.slice(0, 3).map((k) => `'${displayKey(k)}'`);
    const more = issue.keys.length > 3 ? ` and ${issue.keys.length - 3} more` : "";
    const message = `unknown field${issue.keys.length > 1 ? "s" : ""} ${shown.join(", ")}${more}`;
    return [path ? `${path}: ${message}` : message, fieldPath([...issue.path, issue.keys[0] ?? ""])];
  }
  return [path ? `${path}: ${issue.message}` : issue.message, path || undefined];
}

// ---------------------------------------------------------------------------------------------
// One linear pass over the JSON text, before JSON.parse

type Problem =
  | { kind: "invalid"; at: number }
  | { kind: "too-deep"; path: PropertyKey[] }
  | { kind: "duplicate"; path: PropertyKey[] }
  | { kind: "forbidden-key"; path: PropertyKey[] };

export interface JsonScan {
  /** The top-level `id` string, only when everything up to its end is valid JSON (so it is provably top-level). */
  topId?: string;
  problem?: Problem;
}

const LITERAL = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)$/;
function isLiteralCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 45 || c === 46;
}

type Expect = "value" | "value-or-end" | "key" | "key-or-end" | "colon" | "comma-or-end" | "done";

/**
 * Checks nesting depth, duplicate and `__proto__` keys and syntax with an explicit stack, stopping
 * at the first problem, and finds the top-level id. JSON.parse remains the judge of the rest (escapes).
 */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): JsonScan {
  const frames: Array<{ keys: Set<string> | undefined; at: string | number }> = [];
  const path = () => frames.map((f) => f.at);
  // (typed wide: afterValue() below assigns it too, which narrowing does not see)
  let expect = "value" as Expect;
  let topId: string | undefined;
  let idNext = false;
  const result = (problem?: Problem): JsonScan => ({ ...(topId === undefined ? {} : { topId }), ...(problem ? { problem } : {}) });
  const afterValue = () => {
    expect = frames.length === 0 ? "done" : "comma-or-end";
    idNext = false;
  };
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      i++;
      continue;
    }
    const wantsValue = expect === "value" || expect === "value-or-end";
    if (c === 0x7b || c === 0x5b) {
      // { [
      if (!wantsValue) return result({ kind: "invalid", at: i });
      if (frames.length >= maxDepth) return result({ kind: "too-deep", path: path() });
      frames.push(c === 0x7b ? { keys: new Set(), at: "" } : { keys: undefined, at: 0 });
      expect = c === 0x7b ? "key-or-end" : "value-or-end";
      idNext = false;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      // } ]
      const top = frames[frames.length - 1];
      const isObject = c === 0x7d;
      if (!top || (top.keys !== undefined) !== isObject) return result({ kind: "invalid", at: i });
      if (expect !== "comma-or-end" && expect !== (isObject ? "key-or-end" : "value-or-end")) return result({ kind: "invalid", at: i });
      frames.pop();
      afterValue();
      i++;
    } else if (c === 0x3a) {
      // :
      if (expect !== "colon") return result({ kind: "invalid", at: i });
      expect = "value";
      i++;
    } else if (c === 0x2c) {
      // ,
      const top = frames[frames.length - 1];
      if (expect !== "comma-or-end" || !top) return result({ kind: "invalid", at: i });
      if (top.keys) expect = "key";
      else {
        top.at = (top.at as number) + 1;
        expect = "value";
      }
      i++;
    } else if (c === 0x22) {
      // a string: to its closing quote, skipping escapes; raw control characters are invalid JSON
      let j = i + 1;
      for (;;) {
        if (j >= n) return result({ kind: "invalid", at: n });
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d < 0x20) return result({ kind: "invalid", at: j });
        j += d === 0x5c ? 2 : 1;
      }
      const isKey = expect === "key" || expect === "key-or-end";
      if (!isKey && !wantsValue) return result({ kind: "invalid", at: i });
      if (isKey || idNext) {
        let s: unknown;
        try {
          s = JSON.parse(text.slice(i, j + 1));
        } catch {
          return result({ kind: "invalid", at: i });
        }
        if (isKey) {
          const top = frames[frames.length - 1]!;
          const key = s as string;
          top.at = key;
          if (key === "__proto__") return result({ kind: "forbidden-key", path: path() });
          if (top.keys!.has(key)) {
            if (frames.length === 1 && key === "id") topId = undefined;
            return result({ kind: "duplicate", path: path() });
          }
          top.keys!.add(key);
          idNext = frames.length === 1 && key === "id";
          expect = "colon";
        } else {
          topId = s as string;
          afterValue();
        }
      } else afterValue();
      i = j + 1;
    } else {
      // true, false, null or a number
      if (!wantsValue) return result({ kind: "invalid", at: i });
      let j = i;
      while (j < n && isLiteralCode(text.charCodeAt(j))) j++;
      if (j === i || !LITERAL.test(text.slice(i, j))) return result({ kind: "invalid", at: i });
      afterValue();
      i = j;
    }
  }
  return expect === "done" ? result() : result({ kind: "invalid", at: n });
}

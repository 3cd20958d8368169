/**
 * Turns the bytes of one `jobs.submit` message into a canonical JobRequest or a readable
 * rejection. Pure and total: any input gives one of the two, never a throw.
 */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import { checkRepository } from "./repository.js";
import { findSecret, redact, redactText } from "./secrets.js";
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

const KEEP_BYTES = 4_096;

export function newJobId(): string {
  return randomUUID();
}

export function parseSubmission(data: Uint8Array, opts: SubmissionOptions): SubmissionResult {
  const newId = opts.newId ?? newJobId;
  const text = new TextDecoder("utf-8", { fatal: false }).decode(data);

  if (data.byteLength > opts.maxPayloadBytes) {
    return {
      ok: false,
      jobId: peekId(text) ?? newId(),
      reason: `payload is ${data.byteLength} bytes; the limit is ${opts.maxPayloadBytes} (MOONMIND_MAX_PAYLOAD_BYTES). Put large inputs in the repository instead`,
      original: redactText(text.slice(0, KEEP_BYTES)),
      truncated: true,
    };
  }

  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      jobId: peekId(text) ?? newId(),
      reason: `payload is not valid JSON (${(err as Error).message})`,
      original: redactText(text.slice(0, KEEP_BYTES)),
      truncated: text.length > KEEP_BYTES,
    };
  }

  const maybeId = typeof raw === "object" && raw !== null ? (raw as { id?: unknown }).id : undefined;
  const jobId = IdSchema.safeParse(maybeId).success ? (maybeId as string) : (peekId(text) ?? newId());
  const reject = (reason: string, field?: string): SubmissionResult => ({
    ok: false,
    jobId,
    reason,
    ...(field === undefined ? {} : { field }),
    original: redact(raw),
  });

  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
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
  const repoCheck = checkRepository(repository, opts.allowLocalRepos);
  if (!repoCheck.ok) return reject(`repository ${repoCheck.reason}`, "repository");

  const task = { ...(s.task ?? {}) } as Record<string, unknown>;
  if (s.instructions !== undefined) {
    if (task.instructions !== undefined && task.instructions !== s.instructions) {
      return reject("instructions and task.instructions disagree; give one of them", "instructions");
    }
    task.instructions = s.instructions;
  }
  if (s.ref !== undefined) task.git = { ...(task.git as object | undefined), startingBranch: s.ref };
  const taskRuntime = { ...((task.runtime as Record<string, unknown> | undefined) ?? {}) };
  if (s.model !== undefined) taskRuntime.model = s.model;

  // Precedence: task.runtime.mode › targetRuntime › runtime (short form) › the deployment default.
  const chosen = (taskRuntime.mode as string | undefined) ?? s.targetRuntime ?? s.runtime ?? opts.defaultRuntime;
  if (!(RUNTIMES as readonly string[]).includes(chosen)) {
    const field = taskRuntime.mode !== undefined ? "task.runtime.mode" : s.targetRuntime !== undefined ? "targetRuntime" : "runtime";
    return reject(`unknown runtime '${String(chosen).slice(0, 40)}'; expected one of ${RUNTIMES.join(", ")}`, field);
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

function describe(error: z.ZodError): [string, string | undefined] {
  const issue = error.issues[0];
  if (!issue) return ["invalid job request", undefined];
  const field = issue.path.map(String).join(".") || undefined;
  const message =
    issue.code === "unrecognized_keys"
      ? `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`
      : issue.message;
  return [field ? `${field}: ${message}` : message, field ?? (issue.code === "unrecognized_keys" ? issue.keys[0] : undefined)];
}

/** Best effort to keep the submitter's id on a rejection of unparseable bytes. */
function peekId(text: string): string | undefined {
  const m = /"id"\s*:\s*"([A-Za-z0-9_-]{1,128})"/.exec(text.slice(0, KEEP_BYTES));
  return m?.[1];
}

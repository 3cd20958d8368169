/**
 * The job request: the canonical shape every part of the runtime trusts after intake, and
 * the short form a person types with `nats pub`, normalized into it.
 */
import { z } from "zod";
import { IdSchema, RuntimeSchema } from "./runtime.js";

export const PublishModeSchema = z.enum(["none", "branch", "pr"]);

/**
 * Where a string has a C0 control character other than tab, newline and carriage return, or -1.
 * Such text cannot reach an agent's command line (a NUL fails every attempt) or a terminal (ESC).
 */
export function controlCharAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return i;
  }
  return -1;
}

function controlCharMessage(s: string, at: number): string {
  const code = s.charCodeAt(at).toString(16).toUpperCase().padStart(4, "0");
  return `contains the control character U+${code} at position ${at}; only tab, newline and carriage return are allowed`;
}

/** For text that reaches the agent's prompt or command line. */
function rejectControlChars(s: string, ctx: z.RefinementCtx): void {
  const at = controlCharAt(s);
  if (at >= 0) ctx.addIssue({ code: "custom", message: controlCharMessage(s, at) });
}
const argText = (max: number) => z.string().max(max).superRefine(rejectControlChars);

/** A value passed to the agent CLI as an option's value (`--model <value>`). */
const optionValue = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !s.startsWith("-") && !/[\s\u0000-\u001f\u007f]/.test(s), {
      message: "must not start with '-' or contain whitespace or control characters (it is passed to the agent CLI as an option value)",
    });

/** Free-form JSON (a skill's args): every string in it, at any depth, is checked like argText. */
const argValues = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const stack: Array<{ v: unknown; path: Array<string | number> }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === "string") {
      const at = controlCharAt(v);
      if (at >= 0) return ctx.addIssue({ code: "custom", message: controlCharMessage(v, at), path });
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) stack.push({ v: child, path: [...path, Array.isArray(v) ? Number(k) : k] });
    }
  }
});

const SkillSchema = z.strictObject({
  id: z.string().min(1).max(200).superRefine(rejectControlChars),
  args: argValues.optional(),
});

const StepSchema = z.strictObject({
  id: argText(200).optional(),
  title: argText(500).optional(),
  instructions: argText(100_000).optional(),
  skill: SkillSchema.optional(),
});

/**
 * Why git would refuse `name` as a branch (`git check-ref-format --branch`), or why it is too
 * special to use (HEAD and its kin); undefined when it is fine.
 */
export function gitBranchProblem(name: string): string | undefined {
  if (name.startsWith("-")) return "it starts with '-' (git would read it as an option)";
  if (name === "@" || /^(?:[A-Z]+_)*HEAD$/.test(name)) return `'${name}' is a name git gives a special meaning`;
  if (controlCharAt(name) >= 0 || name.includes("\u007f")) return "it contains a control character";
  const bad = /[ ~^:?*[\\]/.exec(name);
  if (bad) return `it contains '${bad[0]}'`;
  if (name.includes("..")) return "it contains '..'";
  if (name.includes("@{")) return "it contains '@{'";
  if (name.startsWith("/") || name.endsWith("/") || name.includes("//")) return "it starts or ends with '/' or contains '//'";
  if (name.endsWith(".")) return "it ends with '.'";
  for (const part of name.split("/")) {
    if (part.startsWith(".")) return "a part of it starts with '.'";
    if (part.endsWith(".lock")) return "a part of it ends with '.lock'";
  }
  return undefined;
}

/** A git branch a person may name: what `git check-ref-format --branch` accepts, less the special names. */
export const GitRefSchema = z
  .string()
  .min(1)
  .max(255)
  .superRefine((s, ctx) => {
    const why = gitBranchProblem(s);
    if (why) ctx.addIssue({ code: "custom", message: `not a usable git ref: ${why}` });
  });

export const TaskSchema = z
  .strictObject({
    instructions: z.string().trim().max(100_000).superRefine(rejectControlChars).optional(),
    runtime: z
      .strictObject({
        mode: RuntimeSchema.optional(),
        model: optionValue(200).optional(),
        effort: optionValue(50).optional(),
      })
      .optional(),
    skill: SkillSchema.optional(),
    steps: z.array(StepSchema).max(100).optional(),
    git: z.strictObject({ startingBranch: GitRefSchema.optional(), newBranch: GitRefSchema.optional() }).optional(),
    publish: z.strictObject({ mode: PublishModeSchema }).optional(),
    /** A follow-up: continues that earlier run of the same repository, from its result and, where the CLI can, its session. */
    resume: z.strictObject({ runId: IdSchema }).optional(),
  })
  .refine((t) => (t.instructions !== undefined && t.instructions.length > 0) || t.skill !== undefined, {
    message: "task.instructions is required unless task.skill names a skill",
    path: ["instructions"],
  })
  .refine((t) => t.resume === undefined || t.git?.startingBranch === undefined, {
    message: "a follow-up starts from the result of the run it resumes; leave out task.git.startingBranch",
    path: ["git", "startingBranch"],
  });

/** The stage of a multi-step workflow a job belongs to. */
export const STAGES = ["discover", "submit", "publish"] as const;
export const StageSchema = z.enum(STAGES);

/** Free-form metadata, except `stage`, which must name a workflow stage. */
export const JobMetadataSchema = z
  .record(z.string(), z.unknown())
  .refine((m) => m.stage === undefined || StageSchema.safeParse(m.stage).success, {
    message: `metadata.stage must be one of ${STAGES.join(", ")}`,
    path: ["stage"],
  });

export const JobRequestSchema = z.object({
  id: IdSchema,
  type: z.literal("task"),
  repository: z.string().min(1).max(2_048),
  targetRuntime: RuntimeSchema,
  affinityKey: z.string().min(1).max(512).optional(),
  priority: z.number().int().min(0).max(9).optional(),
  maxAttempts: z.number().int().min(1).max(20).default(3),
  task: TaskSchema,
  metadata: JobMetadataSchema.optional(),
});
export type JobRequest = z.infer<typeof JobRequestSchema>;

/** What every event and the run record carry of a job's workflow: its skill and stage. */
export const JobMetaSchema = z.object({ skill: z.string().optional(), stage: StageSchema.optional() });
export type JobMeta = z.infer<typeof JobMetaSchema>;

export function jobMeta(job: JobRequest): JobMeta | undefined {
  const skill = job.task.skill?.id;
  const stage = StageSchema.safeParse(job.metadata?.stage);
  if (skill === undefined && !stage.success) return undefined;
  return { ...(skill !== undefined ? { skill } : {}), ...(stage.success ? { stage: stage.data } : {}) };
}

/**
 * What may arrive on jobs.submit: the canonical job with optional id / runtime, the alias
 * `repo`, or the short form `{repository, instructions, runtime?, ref?}`. Unknown keys are
 * refused so a typo is reported instead of silently ignored.
 */
export const JobSubmissionSchema = z
  .object({
    id: IdSchema.optional(),
    type: z.literal("task").optional(),
    repository: z.string().optional(),
    repo: z.string().optional(),
    targetRuntime: z.string().optional(),
    runtime: z.string().optional(),
    affinityKey: z.string().optional(),
    priority: z.number().optional(),
    maxAttempts: z.number().optional(),
    instructions: z.string().optional(),
    ref: z.string().optional(),
    model: z.string().optional(),
    task: z.record(z.string(), z.unknown()).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type JobSubmission = z.infer<typeof JobSubmissionSchema>;

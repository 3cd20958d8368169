/**
 * The job request: the canonical shape every part of the runtime trusts after intake, and
 * the short form a person types with `nats pub`, normalized into it.
 */
import { z } from "zod";
import { IdSchema, RuntimeSchema } from "./runtime.js";

export const PublishModeSchema = z.enum(["none", "branch", "pr"]);

const SkillSchema = z.object({
  id: z.string().min(1).max(200),
  args: z.record(z.string(), z.unknown()).optional(),
});

const StepSchema = z.object({
  id: z.string().max(200).optional(),
  title: z.string().max(500).optional(),
  instructions: z.string().max(100_000).optional(),
  skill: SkillSchema.optional(),
});

/** A git ref a person may name: no option-like values, no whitespace, no `..`. */
export const GitRefSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !s.startsWith("-") && !/[\s~^:?*[\\]|\.\.|@\{/.test(s), "not a valid git ref");

export const TaskSchema = z
  .object({
    instructions: z.string().trim().max(100_000).optional(),
    runtime: z
      .object({
        mode: RuntimeSchema.optional(),
        model: z.string().max(200).optional(),
        effort: z.string().max(50).optional(),
      })
      .optional(),
    skill: SkillSchema.optional(),
    steps: z.array(StepSchema).max(100).optional(),
    git: z.object({ startingBranch: GitRefSchema.optional(), newBranch: GitRefSchema.optional() }).optional(),
    publish: z.object({ mode: PublishModeSchema }).optional(),
  })
  .refine((t) => (t.instructions !== undefined && t.instructions.length > 0) || t.skill !== undefined, {
    message: "task.instructions is required unless task.skill names a skill",
    path: ["instructions"],
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

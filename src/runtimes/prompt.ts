/** The prompt an agent CLI is given for a job: its instructions, then any named skill and steps. */
import type { JobRequest } from "../schemas/job.js";

export function buildPrompt(job: JobRequest): string {
  const parts: string[] = [];
  if (job.task.instructions) parts.push(job.task.instructions);
  if (job.task.skill) {
    const args = job.task.skill.args ? ` with arguments ${JSON.stringify(job.task.skill.args)}` : "";
    parts.push(`Use the skill '${job.task.skill.id}'${args}.`);
  }
  for (const [i, step] of (job.task.steps ?? []).entries()) {
    const title = step.title ?? step.id ?? `Step ${i + 1}`;
    const body = [step.instructions, step.skill ? `Use the skill '${step.skill.id}'.` : undefined].filter(Boolean).join(" ");
    parts.push(`${i + 1}. ${title}${body ? `: ${body}` : ""}`);
  }
  return parts.join("\n\n");
}

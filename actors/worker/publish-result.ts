/**
 * `task.publish.mode` branch | pr, after the agent: the worker commits what the patch holds, pushes
 * it, and for `pr` opens the pull request (src/workspace/publish.ts, src/workspace/forge.ts).
 */
import type { RunRecord } from "../../src/schemas/run.js";
import type { JobRequest } from "../../src/schemas/job.js";
import { redactText } from "../../src/secrets.js";
import { openPullRequest } from "../../src/workspace/forge.js";
import type { PreparedWorkspace, WorkspaceManager } from "../../src/workspace/git.js";

type Published = NonNullable<NonNullable<RunRecord["result"]>["published"]>;

export async function publishResult(
  job: JobRequest,
  ws: PreparedWorkspace,
  mode: "branch" | "pr",
  summary: string | undefined,
  deps: { workspaces: WorkspaceManager; gitAuthor: { name: string; email: string }; forgeApiUrl: string; pushToken?: (() => string | undefined) | undefined },
): Promise<Published> {
  const token = deps.pushToken?.();
  const message = commitMessage(job, summary);
  const { base, ...published } = await deps.workspaces.publishBranch(ws, { message, author: deps.gitAuthor, token, startingBranch: job.task.git?.startingBranch });
  if (mode === "branch") return published;
  const [title, ...rest] = message.split("\n");
  const pr = await openPullRequest({ apiUrl: deps.forgeApiUrl, token, repository: job.repository, head: published.branch, base, title: title!, body: rest.join("\n").trim() });
  return { ...published, pullRequest: pr.url };
}

/** The published commit's message: the job's first instruction line (secrets redacted), and its id. */
function commitMessage(job: JobRequest, summary: string | undefined): string {
  const first = redactText(job.task.instructions ?? job.task.skill?.id ?? "changes").split("\n").find((l) => l.trim())?.trim() ?? "changes";
  const title = first.length > 72 ? `${first.slice(0, 69)}...` : first;
  return `${title}\n\n${summary ? `${summary}\n\n` : ""}MoonMind-Job: ${job.id}\n`;
}

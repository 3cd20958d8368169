/**
 * Opening a pull request through the forge's REST API (GitHub's, or a compatible one at
 * MOONMIND_FORGE_API_URL such as GitHub Enterprise's `https://host/api/v3`). The worker does it
 * with its own token after pushing the branch; the agent never sees either.
 */
import { normalizeRepository } from "../routing.js";
import { PermanentError } from "../errors.js";

export interface PullRequestInput {
  apiUrl: string;
  token: string | undefined;
  repository: string;
  head: string;
  base: string;
  title: string;
  body: string;
  timeoutMs?: number;
}

/** `owner/name` on the forge: the repository's last two path segments (`https://github.com/Org/Repo.git` → `org/repo`). */
export function forgeSlug(repository: string): string {
  return normalizeRepository(repository).split("/").slice(-2).join("/");
}

export async function openPullRequest(pr: PullRequestInput): Promise<{ url: string; number: number }> {
  const slug = forgeSlug(pr.repository);
  const endpoint = `${pr.apiUrl.replace(/\/+$/, "")}/repos/${slug}/pulls`;
  if (!pr.token) {
    throw new PermanentError("PUBLISH_FAILED", `no token to open a pull request on ${slug}: set MOONMIND_GIT_PUSH_TOKEN or MOONMIND_GIT_PUSH_TOKEN_FILE on the worker`);
  }
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: "POST",
      headers: {
        accept: "application/vnd.github+json",
        authorization: `Bearer ${pr.token}`,
        "content-type": "application/json",
        "x-github-api-version": "2022-11-28",
        "user-agent": "moonmind-runtime",
      },
      body: JSON.stringify({ title: pr.title, head: pr.head, base: pr.base, body: pr.body }),
      signal: AbortSignal.timeout(pr.timeoutMs ?? 30_000),
    });
  } catch (err) {
    throw new PermanentError("PUBLISH_FAILED", `the forge at ${pr.apiUrl} could not be reached to open a pull request on ${slug}: ${(err as Error).message}`, { cause: err });
  }
  const answer = (await res.json().catch(() => ({}))) as { html_url?: unknown; number?: unknown; message?: unknown; errors?: Array<{ message?: unknown; code?: unknown }> };
  if (res.status !== 201 || typeof answer.html_url !== "string") {
    // The forge's own words: GitHub's `message` and, for a 422, each error's message or code.
    const details = (answer.errors ?? []).map((e) => String(e.message ?? e.code ?? "")).filter(Boolean).join("; ");
    const said = [typeof answer.message === "string" ? answer.message : "", details].filter(Boolean).join(": ") || `HTTP ${res.status}`;
    throw new PermanentError("PUBLISH_FAILED", `opening a pull request ${pr.head} → ${pr.base} on ${slug} failed (HTTP ${res.status}): ${said.slice(0, 500)}`);
  }
  return { url: answer.html_url, number: typeof answer.number === "number" ? answer.number : 0 };
}

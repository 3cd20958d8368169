/**
 * Repository references as jobs name them, validated once at intake and resolved to a
 * clone source by the worker. Accepted: `owner/name`, https/http/ssh/git URLs and
 * scp-like `git@host:owner/name` without embedded credentials; local paths and file://
 * URLs only where local repositories are allowed.
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type RepositoryKind = "shorthand" | "remote" | "local";

export interface RepositoryCheck {
  ok: boolean;
  kind?: RepositoryKind;
  reason?: string;
}

const SHORTHAND = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+$/;
const SCP_LIKE = /^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:(?!\/\/)[A-Za-z0-9_.~/-]+$/;
const REMOTE_SCHEMES = new Set(["https:", "http:", "ssh:", "git:"]);

/** `-oProxyCommand=…` as a host (ssh://-oProxyCommand=x/repo) runs a command where git or ssh is old. */
function optionLike(part: string): boolean {
  return part.startsWith("-");
}

export function checkRepository(repository: string, allowLocal: boolean): RepositoryCheck {
  const r = repository;
  if (r.trim() !== r || r.length === 0) return { ok: false, reason: "must not be empty or have surrounding whitespace" };
  if (r.startsWith("-")) return { ok: false, reason: "must not start with '-' (it would be read as a git option)" };
  if (/[\s\u0000-\u001f\u007f]/.test(r)) return { ok: false, reason: "must not contain whitespace or control characters" };
  if (r.includes("::")) return { ok: false, reason: "git transport helpers ('<helper>::<address>') are not allowed" };

  if (r.startsWith("/") || r.startsWith("./") || r.startsWith("../") || /^file:/i.test(r)) {
    if (!allowLocal) {
      return {
        ok: false,
        reason: "local repositories are disabled on this deployment (set MOONMIND_ALLOW_LOCAL_REPOS=true to allow them)",
      };
    }
    return { ok: true, kind: "local" };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r)) {
    let url: URL;
    try {
      url = new URL(r);
    } catch {
      return { ok: false, reason: "is not a valid URL" };
    }
    if (!REMOTE_SCHEMES.has(url.protocol)) return { ok: false, reason: `scheme '${url.protocol}' is not supported` };
    if (url.password || ((url.protocol === "https:" || url.protocol === "http:") && url.username)) {
      return {
        ok: false,
        reason: "must not embed credentials; give the worker access through its git credentials instead",
      };
    }
    if (!url.hostname || url.pathname.replace(/\/+/g, "") === "") return { ok: false, reason: "URL names no repository path" };
    if (optionLike(decodeURIComponent(url.username)) || optionLike(url.hostname) || decodeURIComponent(url.pathname).split("/").some(optionLike)) {
      return { ok: false, reason: "a user, host or path part that starts with '-' would be read by ssh or git as an option" };
    }
    return { ok: true, kind: "remote" };
  }
  if (SCP_LIKE.test(r)) {
    if (r.split(/[@:/]/).some(optionLike)) {
      return { ok: false, reason: "a user, host or path part that starts with '-' would be read by ssh or git as an option" };
    }
    return { ok: true, kind: "remote" };
  }
  if (SHORTHAND.test(r) && !r.split("/").some((p) => p === "." || p === "..")) return { ok: true, kind: "shorthand" };
  return { ok: false, reason: "expected 'owner/name', a git URL or git@host:owner/name" };
}

/** What `git clone` is given for a validated repository. */
export function cloneSource(repository: string, gitBaseUrl: string, cwd = process.cwd()): string {
  if (/^file:/i.test(repository)) return fileURLToPath(repository);
  if (isAbsolute(repository) || repository.startsWith("./") || repository.startsWith("../")) {
    return resolve(cwd, repository);
  }
  if (SHORTHAND.test(repository)) return `${gitBaseUrl.replace(/\/+$/, "")}/${repository}`;
  return repository;
}

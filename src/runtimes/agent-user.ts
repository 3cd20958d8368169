/**
 * Agent CLIs run as a non-root user where the platform allows: when the worker runs as root and
 * MOONMIND_AGENT_USER names a user, each job's directory is handed to that user and the CLI is
 * started with its uid and gid (inside the sandbox: by setpriv, after bwrap has set it up as root).
 */
import { lchown, readdir, lstat } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { ConfigError } from "../errors.js";

export interface AgentUser {
  name: string;
  uid: number;
  gid: number;
}

export function resolveAgentUser(spec: string | undefined): AgentUser | undefined {
  if (!spec || process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", spec], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", spec], { encoding: "utf8" }).trim());
    return { name: spec, uid, gid };
  } catch (err) {
    throw new ConfigError(`MOONMIND_AGENT_USER=${spec} is not a user on this machine`, {
      cause: err,
      remedy: "create the user (e.g. useradd --create-home agent) or unset MOONMIND_AGENT_USER",
    });
  }
}

/** Hands a directory tree to the agent user (symlinks themselves, never their targets). */
export async function chownTree(path: string, user: AgentUser): Promise<void> {
  const stat = await lstat(path);
  // lchown: a link in the checkout (x -> /etc/shadow) must hand over the link, never its target.
  await lchown(path, user.uid, user.gid);
  if (!stat.isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), user);
}

/**
 * The argv prefix that drops to the agent user: used inside the sandbox, where bwrap runs as root
 * (no user namespace needed) and the CLI must not. Groups cleared, no inheritable capabilities.
 */
export function dropPrivilegesArgv(user: { uid: number; gid: number }, setpriv = "/usr/bin/setpriv"): string[] {
  return [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--inh-caps=-all", "--"];
}

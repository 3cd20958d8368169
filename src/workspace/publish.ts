/**
 * `publish: branch | pr`: the worker commits the agent's change and pushes it to the repository
 * the checkout came from, through the locked git, the push token given to git by a credential
 * helper reading the environment of that one process.
 */
import { PermanentError } from "../errors.js";
import { cleanGitEnv, gitIdentity, lockedGit, run } from "./git-run.js";

/** What a push needs of a prepared workspace (./git.ts `PreparedWorkspace`). */
export interface PublishTarget {
  gitDir: string;
  repoDir: string;
  baseCommit: string;
  source: string;
  branch: string;
}

/** The only credential helper of a push: the token from its environment, never from argv, a URL or a file git keeps. */
export const PUSH_CREDENTIAL_HELPER = '!f() { test "$1" = get && echo username=x-access-token && echo "password=$MOONMIND_PUSH_TOKEN"; }; f';

export interface PublishOptions {
  message: string;
  author: { name: string; email: string };
  /** A token for the push, given to git by a credential helper through the environment, never in argv or a URL. */
  token?: string | undefined;
  /** `task.git.startingBranch`, when the job named one. */
  startingBranch?: string | undefined;
}

/**
 * Commits what `diff` staged (the agent's change, as the patch has it) on the run's branch with
 * the worker's author, on top of the starting commit, and pushes it to where the checkout came
 * from. The worker does this, not the agent: nothing in the checkout is run or trusted, and the
 * push token reaches git only through a credential helper reading the environment.
 */
export async function publishBranch(
  ws: PublishTarget,
  home: string,
  opts: PublishOptions,
  timeoutMs: number,
): Promise<{ branch: string; commit: string; remote: string; base: string }> {
  const locked = lockedGit(ws.gitDir, ws.repoDir, home, timeoutMs);
  const identity = gitIdentity(opts.author);
  const tree = (await locked(["write-tree"])).trim();
  const commit = (await locked(["commit-tree", tree, "-p", ws.baseCommit, "-F", "-"], { env: identity, input: opts.message })).trim();
  // Talking to the remote: the transports a clone may use (never `ext`), the token only through the
  // credential helper, and none of the locked settings, which git passes on to a local remote's
  // receive-pack (our hooks path would stop that repository's own hooks).
  const helper = opts.token ? ["-c", "credential.helper=", "-c", `credential.helper=${PUSH_CREDENTIAL_HELPER}`] : [];
  const transports = ["https", "http", "ssh", "git", "file"].flatMap((p) => ["-c", `protocol.${p}.allow=always`]);
  const remote = (args: string[]) =>
    run([`--git-dir=${ws.gitDir}`, "-c", "protocol.allow=never", "-c", "core.fsmonitor=false", ...transports, ...helper, ...args], home, {
      env: { ...cleanGitEnv(home), ...(opts.token ? { MOONMIND_PUSH_TOKEN: opts.token } : {}) },
      extendEnv: false,
      timeoutMs,
    });
  try {
    await remote(["push", "--no-verify", "--", ws.source, `${commit}:refs/heads/${ws.branch}`]);
  } catch (err) {
    // What the remote said (`remote: …`), its verdict (`! [remote rejected] …`) and git's own error.
    const lines = (err as Error).message.replace(/^git \S+ failed: /, "").split("\n").map((l) => l.trim());
    const said = lines.filter((l) => /^(remote:|!|error:|fatal:)/.test(l));
    const why = (said.length > 0 ? said : lines.slice(-3)).join(" ").slice(0, 800);
    throw new PermanentError("PUBLISH_FAILED", `pushing branch ${ws.branch} to ${ws.source} failed: ${why}`, { cause: err });
  }
  // The branch it started from, for a pull request: the one named, else the remote's default.
  const symref = opts.startingBranch ? "" : await remote(["ls-remote", "--symref", "--", ws.source, "HEAD"]).catch(() => "");
  const base = opts.startingBranch ?? /^ref: refs\/heads\/(\S+)\s+HEAD/m.exec(symref)?.[1] ?? "main";
  return { branch: ws.branch, commit, remote: ws.source, base };
}

/**
 * What a worker clears up and decides before it serves: agents an earlier life left running,
 * workspaces of runs no live worker holds (each holds a copy of a login), and the agents' sandbox.
 */
import type { Env } from "../../src/config.js";
import type { Logger } from "../../src/logger.js";
import type { RunStore } from "../../src/runs/store.js";
import type { AgentUser } from "../../src/runtimes/agent-user.js";
import { killOrphanAgents } from "../../src/runtimes/process.js";
import { resolveSandbox } from "../../src/runtimes/sandbox.js";
import type { WorkspaceManager } from "../../src/workspace/git.js";

export type AgentSandbox = { bwrap: string; hide: string[] } | undefined;

/**
 * Agents of an earlier life of any worker on this disk are stopped, and the sandbox chosen:
 * bubblewrap where it works (MOONMIND_AGENT_SANDBOX=auto), or a named reason it does not.
 * A choice that cannot be made (bwrap required and broken) is added to `problems`.
 */
export async function isolateAgents(o: {
  env: Env;
  workdir: string;
  agentUser: AgentUser | undefined;
  volumePaths: string[];
  problems: string[];
  log: Logger;
}): Promise<AgentSandbox> {
  const { env, log } = o;
  const orphans = await killOrphanAgents({ workdir: o.workdir, graceMs: env.MOONMIND_KILL_GRACE_MS });
  if (orphans.killed.length > 0) log.warn({ killed: orphans.killed.length, survivors: orphans.survivors }, "stopped agents whose worker is gone");
  try {
    const sandbox = await resolveSandbox(env.MOONMIND_AGENT_SANDBOX, { user: o.agentUser });
    if (sandbox.kind === "bwrap" && sandbox.bwrap) {
      log.info({ sandbox: "bwrap" }, "agents run in a sandbox: their own PID namespace, only their run's directory writable");
      return { bwrap: sandbox.bwrap, hide: [...(env.NATS_CREDS ? [env.NATS_CREDS] : []), ...o.volumePaths] };
    }
    const why = sandbox.reason ?? "no sandbox";
    if (process.getuid?.() === 0 && o.agentUser) {
      log.warn(
        { reason: why },
        "agents run without a sandbox, as MOONMIND_AGENT_USER: they cannot read this worker's environment, but runs at once share that user — an agent can read another run's directory (its copy of a login) and a process it detaches outlives its run. For agents you do not trust, install bubblewrap (tools/install-bubblewrap.sh)",
      );
    } else {
      log.warn(
        { reason: why },
        "agents run without a sandbox as this worker's user: they can read its environment (NATS credentials, keys). Install bubblewrap (tools/install-bubblewrap.sh), or run as root with MOONMIND_AGENT_USER",
      );
    }
  } catch (err) {
    o.problems.push((err as Error).message);
  }
  return undefined;
}

/**
 * Workspaces left by runs that no live worker holds — this worker's earlier life, a crashed
 * peer on the same disk — go at start.
 */
export async function sweepWorkspaces(o: {
  workspaces: WorkspaceManager;
  runs: RunStore;
  workerId: string;
  isWorkerAlive: (workerId: string) => Promise<boolean>;
  log: Logger;
}): Promise<void> {
  const swept = await o.workspaces.sweep(async (jobId) => {
    const run = await o.runs.get(jobId);
    if (!run || run.record.state !== "running" || run.record.workerId === undefined) return true;
    if (run.record.workerId === o.workerId) return true;
    return !(await o.isWorkerAlive(run.record.workerId));
  });
  if (swept.removed.length > 0) o.log.info({ removed: swept.removed.length, kept: swept.kept.length }, "removed workspaces of runs no worker holds");
}

/**
 * An agent run without the sandbox still dies with its worker: util-linux `setpriv --pdeathsig`
 * asks the kernel (prctl PR_SET_PDEATHSIG) to SIGKILL the CLI when the worker that spawned it
 * dies, even by SIGKILL. It covers the CLI itself; what the CLI started and detached is found by
 * its run token at the next worker start (killOrphanAgents). The sandbox needs none of this:
 * bwrap's --die-with-parent ends the whole PID namespace.
 */
import { accessSync, constants } from "node:fs";
import type { AgentInvocation } from "./types.js";

const SETPRIV_PATHS = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/local/bin/setpriv"];

let setpriv: string | null | undefined;

/** Where setpriv is, once looked up; null where it is not installed (the agent then runs as it is). */
export function setprivPath(): string | null {
  if (setpriv !== undefined) return setpriv;
  setpriv = SETPRIV_PATHS.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }) ?? null;
  return setpriv;
}

/** `bin args` as a command the kernel kills when the worker dies (unchanged where setpriv is missing). */
export function withParentDeath(bin: string, args: string[]): [string, string[]] {
  const setpriv = setprivPath();
  // setpriv execs the command in place (same pid), resolving a bare name on the command's own PATH.
  return setpriv ? [setpriv, ["--pdeathsig", "KILL", "--", bin, ...args]] : [bin, args];
}

/** The agent's invocation, run so that it dies with its worker. */
export function diesWithWorker(inv: AgentInvocation): AgentInvocation {
  const [bin, args] = withParentDeath(inv.bin, inv.args);
  return { ...inv, bin, args };
}

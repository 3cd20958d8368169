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

/** The invocation, run through setpriv so the kernel kills it when the worker dies. */
export function diesWithWorker(inv: AgentInvocation): AgentInvocation {
  const bin = setprivPath();
  if (!bin) return inv;
  // setpriv execs the CLI in place (same pid), resolving a bare name on the CLI's own PATH.
  return { ...inv, bin, args: ["--pdeathsig", "KILL", "--", inv.bin, ...inv.args] };
}

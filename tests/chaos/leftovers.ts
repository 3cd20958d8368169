/** What a run leaves behind once everything is stopped: job workspaces and processes. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** `<jobId>-<random>` as the workspace manager names a job's directory. */
const JOB_DIR = /^[A-Za-z0-9_-]+-[A-Za-z0-9]{6}$/;

/** Job workspaces under each workdir: a job's directory or the worker's own for it (`.worker/<name>`), once each. */
export function leftoverWorkspaces(workdirs: string[]): string[] {
  const found = new Set<string>();
  for (const root of workdirs) {
    for (const parent of [root, join(root, ".worker")]) {
      let names: string[];
      try {
        names = readdirSync(parent);
      } catch {
        continue;
      }
      for (const name of names) if (JOB_DIR.test(name)) found.add(join(root, name));
    }
  }
  return [...found];
}

export interface LeftoverProcess {
  pid: number;
  cmdline: string;
}

/** Every process but this one whose command line or environment mentions `marker`. */
export function processesMentioning(marker: string): LeftoverProcess[] {
  const found: LeftoverProcess[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      let environ = "";
      try {
        environ = readFileSync(`/proc/${name}/environ`, "utf8");
      } catch {
        // another user's process: its command line is all we may read
      }
      if (cmdline.includes(marker) || environ.includes(marker)) {
        found.push({ pid: Number(name), cmdline: cmdline.split("\0").join(" ").slice(0, 200) });
      }
    } catch {
      // gone while we looked
    }
  }
  return found;
}

/**
 * The side channel: the stand-in agent appends `start <pid>` and `done <pid>` to `<ledger dir>/<job
 * id>`. Watching the directory (inotify) stamps every line with the time it was seen and, for a
 * `start`, the worker that ran it (the agent's MOONMIND_RUN_TOKEN begins with its worker's pid).
 */
import { readFileSync, readdirSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";

export interface LedgerLine {
  kind: "start" | "done";
  pid: number;
  /** When this process first saw the line (ms since epoch). */
  at: number;
  /** The pid of the worker that started the agent, when it could still be read. */
  workerPid?: number;
}

export interface Ledger {
  /** Reads the job's file now (synchronously) and returns every line seen so far. */
  refresh(jobId: string): LedgerLine[];
  lines(jobId: string): LedgerLine[];
  count(jobId: string, kind: LedgerLine["kind"]): number;
  /** Reads every file once more, then stops watching. */
  close(): void;
}

export function watchLedger(dir: string): Ledger {
  const seen = new Map<string, LedgerLine[]>();
  const refresh = (jobId: string): LedgerLine[] => {
    const known = seen.get(jobId) ?? [];
    let text: string;
    try {
      text = readFileSync(join(dir, jobId), "utf8");
    } catch {
      return known;
    }
    // Only whole lines: an append may be seen half written.
    const raw = text.split("\n").slice(0, -1);
    const now = Date.now();
    for (const line of raw.slice(known.length)) {
      const m = /^(start|done) (\d+)$/.exec(line);
      if (!m) continue;
      const entry: LedgerLine = { kind: m[1] as LedgerLine["kind"], pid: Number(m[2]), at: now };
      if (entry.kind === "start") {
        const workerPid = runTokenPid(entry.pid);
        if (workerPid !== undefined) entry.workerPid = workerPid;
      }
      known.push(entry);
    }
    seen.set(jobId, known);
    return known;
  };

  const dirty = new Set<string>();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    for (const id of dirty) refresh(id);
    dirty.clear();
  };
  const watcher: FSWatcher = watch(dir, (_event, name) => {
    if (!name) return;
    dirty.add(name.toString());
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });

  let closed = false;
  return {
    refresh,
    lines: (jobId) => seen.get(jobId) ?? [],
    count: (jobId, kind) => (seen.get(jobId) ?? []).filter((l) => l.kind === kind).length,
    close() {
      if (closed) return;
      closed = true;
      watcher.close();
      for (const name of readdirSync(dir)) refresh(name);
    },
  };
}

/** The worker pid in an agent's MOONMIND_RUN_TOKEN (`<worker pid>.<start>.<random>`). */
function runTokenPid(pid: number): number | undefined {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
    const m = /(?:^|\0)MOONMIND_RUN_TOKEN=(\d+)\./.exec(environ);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

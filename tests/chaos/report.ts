/** The figures of a chaos run, worked out from what was observed, and their table. */
import { TERMINAL_RUN_STATES, type RunState } from "../../src/schemas/run.js";
import type { FaultKind, FaultRecord } from "./faults.js";
import type { UnexpectedExit } from "./fleet.js";
import type { Ledger } from "./ledger.js";
import type { LeftoverProcess } from "./leftovers.js";
import type { RunView } from "./observer.js";

export interface DoubledJob {
  jobId: string;
  /**
   * Inside the window between its agent's exit and its record write when a worker was killed or
   * stopped; `dying`: the agent finished while its worker was being killed, after the harness's last
   * look and before the kernel had torn the worker down (and with it the agent): its result died too.
   */
  window: "kill" | "dying" | "stall" | "none";
  /** The fault that struck last before the agent's second start (none: no fault near it). */
  cause: FaultKind | "none";
  /** The first agent wrote `done` after its worker was seen gone: an orphan outlived it and finished its turn. */
  orphanCompleted: boolean;
  /** Faults from shortly before the first start to the last line: `<kind> <target> [pid] +<ms>`. */
  faults: string[];
  /** `start|done <pid> +<ms since the run began> [w<worker pid>]`. */
  ledger: string[];
  finalState: RunState | "missing";
}

export interface LostJob {
  jobId: string;
  state: RunState | "missing";
  /** The worker named in its record last. */
  workerId: string | undefined;
  terminalEvents: number;
  /** When its record was first seen terminal, relative to the run's start. */
  terminalSeenMs: number | undefined;
  /** Faults within 5 s of it: `<kind> <target> [pid] +<ms>`. */
  faults: string[];
}

export interface ChaosReport {
  seed: number;
  /** When the run began (ms since epoch); ledger and fault times in `doubles` are relative to it. */
  startedAt: number;
  jobs: number;
  workers: number;
  intakes: number;
  concurrency: number;
  /** nats-servers: 1, or 3 clustered (streams at R3). */
  servers: number;
  workerKills: number;
  intakeKills: number;
  serverRestarts: number;
  stalls: number;
  skippedFaults: number;
  /** Actors that exited by themselves (their slot restarted them): none should. */
  unexpectedExits: UnexpectedExit[];
  /** Actors whose NATS connection had not answered again (health file) since the last server fault ended: `<slot>: <why>`. */
  notReconnected: string[];
  states: Partial<Record<RunState | "missing", number>>;
  lost: number;
  missingRecord: number;
  missingTerminalEvent: number;
  stuck: number;
  doubled: number;
  doubledInWindow: number;
  doubledInKillWindow: number;
  /** Doubled because the agent finished between the SIGKILL and its worker's death. */
  doubledInDyingWindow: number;
  doubledInStallWindow: number;
  doubledOutsideWindow: number;
  doubledOutsideByCause: Partial<Record<FaultKind | "none", number>>;
  /** Of those outside the window: the agent outlived its SIGKILLed worker and completed. */
  doubledByOrphans: number;
  /** Ended failed RESULT_LOST: the agent finished, its worker was killed before storing the result; not run again. */
  resultLost: number;
  startedTwice: number;
  killsInWindow: number;
  jobsInWindow: number;
  stallsInWindow: number;
  jobsInStallWindow: number;
  /** From an agent's `done` to its record seen terminal, over jobs whose agent ran once: the window's width. */
  windowMs: { p50: number; p95: number; max: number };
  /** Jobs with more than one terminal event in STATUS. */
  terminalEventsTwice: number;
  /** Jobs with a `start` and no `done` in the ledger: their agent never finished a turn. */
  neverCompleted: number;
  leftInJobs: number | "unknown";
  leftoverWorkspaces: string[];
  leftoverProcesses: LeftoverProcess[];
  submitRetries: number;
  stopForced: number;
  drainMs: number;
  totalMs: number;
  faults: FaultRecord[];
  doubles: DoubledJob[];
  lostJobs: LostJob[];
  ok: boolean;
}

export interface Observed {
  jobIds: string[];
  ledger: Ledger;
  runs: Map<string, RunView>;
  terminalEvents: Map<string, number>;
  faults: FaultRecord[];
  startedAt: number;
}

export function analyse(o: Observed): Pick<
  ChaosReport,
  | "states" | "lost" | "missingRecord" | "missingTerminalEvent" | "stuck" | "doubled" | "doubledInWindow" | "doubledOutsideWindow"
  | "doubledOutsideByCause" | "startedTwice" | "killsInWindow" | "jobsInWindow" | "terminalEventsTwice" | "neverCompleted" | "doubles"
  | "doubledInKillWindow" | "doubledInDyingWindow" | "doubledInStallWindow" | "stallsInWindow" | "jobsInStallWindow" | "windowMs" | "doubledByOrphans" | "lostJobs" | "resultLost"
> {
  const inWindowOf = (kind: FaultKind) => new Set(o.faults.filter((f) => f.kind === kind).flatMap((f) => f.inWindow ?? []));
  const killWindow = inWindowOf("worker-kill");
  const stallWindow = inWindowOf("stall");
  const widths: number[] = [];
  const states: ChaosReport["states"] = {};
  let lost = 0, missingRecord = 0, missingTerminalEvent = 0, stuck = 0, startedTwice = 0, terminalEventsTwice = 0, neverCompleted = 0;
  const doubles: DoubledJob[] = [];
  const lostJobs: LostJob[] = [];
  const faultLine = (f: FaultRecord) => `${f.kind} ${f.target ?? ""}${f.pid ? ` pid ${f.pid}` : ""}${f.led?.length ? ` (led ${f.led.join(" ")})` : ""} +${f.startedAt! - o.startedAt}`;
  for (const id of o.jobIds) {
    const run = o.runs.get(id);
    const state = run?.state ?? "missing";
    states[state] = (states[state] ?? 0) + 1;
    const terminal = run !== undefined && TERMINAL_RUN_STATES.includes(run.state);
    const events = o.terminalEvents.get(id) ?? 0;
    if (!run) missingRecord++;
    else if (!terminal) stuck++;
    if (events === 0) missingTerminalEvent++;
    if (!terminal || events === 0) {
      lost++;
      const seen = run?.terminalSeenAt;
      lostJobs.push({
        jobId: id,
        state,
        workerId: run?.workerId,
        terminalEvents: events,
        terminalSeenMs: seen === undefined ? undefined : seen - o.startedAt,
        faults: o.faults.filter((f) => f.startedAt !== undefined && seen !== undefined && Math.abs(f.startedAt - seen) < 5_000).map(faultLine),
      });
    }
    if (events > 1) terminalEventsTwice++;
    const lines = o.ledger.lines(id);
    const starts = lines.filter((l) => l.kind === "start");
    const dones = lines.filter((l) => l.kind === "done");
    if (starts.length > 1) startedTwice++;
    if (starts.length > 0 && dones.length === 0) neverCompleted++;
    if (starts.length === 1 && dones.length === 1 && run?.terminalSeenAt !== undefined) widths.push(run.terminalSeenAt - dones[0]!.at);
    if (dones.length > 1) {
      const secondStart = starts.find((s) => s.at >= dones[0]!.at) ?? starts[1] ?? starts[0]!;
      const kill = killOf(o.faults, starts[0]!.workerPid, dones[0]!.at);
      const dying = kill !== undefined && kill.diedAt !== undefined && dones[0]!.at <= kill.diedAt + DYING_SLACK_MS;
      doubles.push({
        jobId: id,
        window: killWindow.has(id) ? "kill" : dying ? "dying" : stallWindow.has(id) ? "stall" : "none",
        cause: causeOf(o.faults, starts[0]!.at, secondStart.at),
        orphanCompleted: kill !== undefined && !dying,
        faults: o.faults
          .filter((f) => f.startedAt !== undefined && f.startedAt >= starts[0]!.at - 5_000 && f.startedAt <= lines.at(-1)!.at)
          .map(faultLine),
        ledger: lines.map((l) => `${l.kind} ${l.pid} +${l.at - o.startedAt}${l.workerPid ? ` w${l.workerPid}` : ""}`),
        finalState: state,
      });
    }
  }
  const outside = doubles.filter((d) => d.window === "none");
  const kindCount = (kind: FaultKind) => o.faults.filter((f) => f.kind === kind && (f.inWindow?.length ?? 0) > 0).length;
  widths.sort((a, b) => a - b);
  const at = (q: number) => widths[Math.min(widths.length - 1, Math.floor(q * widths.length))] ?? 0;
  const doubledOutsideByCause: ChaosReport["doubledOutsideByCause"] = {};
  for (const d of outside) doubledOutsideByCause[d.cause] = (doubledOutsideByCause[d.cause] ?? 0) + 1;
  return {
    states,
    lost,
    missingRecord,
    missingTerminalEvent,
    stuck,
    doubled: doubles.length,
    doubledInWindow: doubles.length - outside.length,
    doubledInKillWindow: doubles.filter((d) => d.window === "kill").length,
    doubledInDyingWindow: doubles.filter((d) => d.window === "dying").length,
    doubledInStallWindow: doubles.filter((d) => d.window === "stall").length,
    doubledOutsideWindow: outside.length,
    doubledOutsideByCause,
    doubledByOrphans: outside.filter((d) => d.orphanCompleted).length,
    resultLost: o.jobIds.filter((id) => o.runs.get(id)?.errorCode === "RESULT_LOST").length,
    startedTwice,
    killsInWindow: kindCount("worker-kill"),
    jobsInWindow: killWindow.size,
    stallsInWindow: kindCount("stall"),
    jobsInStallWindow: stallWindow.size,
    windowMs: { p50: at(0.5), p95: at(0.95), max: widths.at(-1) ?? 0 },
    terminalEventsTwice,
    neverCompleted,
    doubles,
    lostJobs,
  };
}

/** The last fault that struck between the agent's first start and its second (a second of slack). */
function causeOf(faults: FaultRecord[], firstStart: number, secondStart: number): FaultKind | "none" {
  const struck = faults.filter((f) => f.startedAt !== undefined && f.startedAt >= firstStart - 1_000 && f.startedAt <= secondStart);
  return struck.sort((a, b) => b.startedAt! - a.startedAt!)[0]?.kind ?? "none";
}

/**
 * How long after its worker was seen gone an agent's `done` may still be seen and count as written
 * while the worker died: both times are stamped by this process's event loop (inotify, the exit's
 * SIGCHLD), a few ms apart for one instant; an orphan that outlives its worker (the stand-in sleeps
 * 50–300 ms) shows up well past this.
 */
const DYING_SLACK_MS = 50;

/** The SIGKILL of the worker that started the agent, when it struck before the agent's `done`. */
function killOf(faults: FaultRecord[], workerPid: number | undefined, doneAt: number): FaultRecord | undefined {
  return faults.find((f) => f.kind === "worker-kill" && workerPid !== undefined && f.pid === workerPid && f.startedAt! < doneAt);
}

export function renderReport(r: ChaosReport): string {
  const fmtS = (ms: number) => `${(ms / 1_000).toFixed(1)} s`;
  const byCause = Object.entries(r.doubledOutsideByCause).map(([k, v]) => `${k} ${v}`).join(", ");
  const rows: Array<[string, string | number]> = [
    ["seed", r.seed],
    ["jobs", r.jobs],
    ["workers × concurrency / intakes", `${r.workers} × ${r.concurrency} / ${r.intakes}`],
    ["nats-servers", r.servers > 1 ? `${r.servers} (cluster, R${r.servers})` : r.servers],
    ["worker kills (SIGKILL)", r.workerKills],
    ["intake kills (SIGKILL)", r.intakeKills],
    [r.servers > 1 ? "nats-server node kills (SIGKILL, restart)" : "nats-server restarts", r.serverRestarts],
    ["worker stalls (SIGSTOP > ack_wait)", r.stalls],
    ["faults skipped", r.skippedFaults],
    ["actor exits not caused by the run", r.unexpectedExits.length],
    ["actors not answering NATS after the last server fault", r.notReconnected.length],
    ["run states", Object.entries(r.states).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["lost (no terminal record or event)", r.lost],
    ["  no run record", r.missingRecord],
    ["  no terminal event", r.missingTerminalEvent],
    ["stuck (record not terminal)", r.stuck],
    ["doubled (agent completed twice)", r.doubled],
    ["  inside the window: kill", r.doubledInKillWindow],
    ["  inside the window: agent done as its worker died", r.doubledInDyingWindow],
    ["  inside the window: stall", r.doubledInStallWindow],
    ["  outside the window", `${r.doubledOutsideWindow}${byCause ? ` (${byCause})` : ""}`],
    ["    agent finished after its worker was gone", r.doubledByOrphans],
    ["ended RESULT_LOST instead (not run again)", r.resultLost],
    ["kills inside the window (jobs)", `${r.killsInWindow} of ${r.workerKills} (${r.jobsInWindow})`],
    ["stalls spanning an agent's exit (jobs)", `${r.stallsInWindow} of ${r.stalls} (${r.jobsInStallWindow})`],
    ["window: agent exit → record, p50/p95/max", `${r.windowMs.p50} / ${r.windowMs.p95} / ${r.windowMs.max} ms`],
    ["started twice (informational)", r.startedTwice],
    ["agent never completed", r.neverCompleted],
    ["terminal event more than once", r.terminalEventsTwice],
    ["left in JOBS", r.leftInJobs],
    ["left-over workspaces", r.leftoverWorkspaces.length],
    ["left-over processes", r.leftoverProcesses.length],
    ["submit retries (server away)", r.submitRetries],
    ["actors SIGKILLed at stop", r.stopForced],
    ["time to drain (after last fault)", fmtS(r.drainMs)],
    ["total time", fmtS(r.totalMs)],
    ["result", r.ok ? "ok: 0 lost, 0 doubled outside the window" : "FAILED"],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`| ${"figure".padEnd(width)} | value`, `|${"-".repeat(width + 2)}|------`, ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${v}`)].join("\n");
}

/** What a failed chaos test shows: the report, then every fault, double, loss and leftover. */
export function renderDetails(report: ChaosReport): string {
  return [
    "",
    renderReport(report),
    ...report.faults.map((f) => `fault ${f.kind} ${f.target ?? ""}${f.pid ? ` pid ${f.pid}` : ""}${f.led?.length ? ` (led ${f.led.join(" ")})` : ""}${f.skipped ? ` skipped: ${f.skipped}` : ` +${f.startedAt! - report.startedAt}..+${f.endedAt! - report.startedAt} ms`}`),
    ...report.doubles.map((d) => `doubled ${d.jobId} (window ${d.window}, after ${d.cause}): ${d.ledger.join(", ")}`),
    ...report.lostJobs.map((l) => `lost ${l.jobId}: record ${l.state}, ${l.terminalEvents} terminal events; faults: ${l.faults.join(", ")}`),
    ...report.unexpectedExits.map((e) => `unexpected exit: ${e.slot} code ${e.code} signal ${e.signal} at +${e.at - report.startedAt} ms`),
    ...report.notReconnected.map((n) => `not reconnected: ${n}`),
    ...report.leftoverWorkspaces.map((w) => `left-over workspace ${w}`),
    ...report.leftoverProcesses.map((p) => `left-over process ${p.pid}: ${p.cmdline}`),
  ].join("\n");
}

/** The figures every chaos test holds to: what was struck, and zero of everything that went wrong. */
export function verdictFigures(report: ChaosReport) {
  return {
    faultsStruck: report.workerKills + report.intakeKills + report.serverRestarts + report.stalls,
    lost: report.lost,
    doubledOutsideWindow: report.doubledOutsideWindow,
    stuck: report.stuck,
    leftInJobs: report.leftInJobs,
    leftoverProcesses: report.leftoverProcesses.length,
    leftoverWorkspaces: report.leftoverWorkspaces.length,
  };
}

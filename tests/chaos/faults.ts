/**
 * The faults of a run: planned up front from the seed (when, by progress, and against which
 * slot), struck while the jobs run: `worker-kill` and `intake-kill` SIGKILL an actor (its slot
 * restarts it), `server-restart` stops the nats-server and starts it again on the same port and
 * store, or, on a 3-node cluster, SIGKILLs one node (picked by the seed) and restarts it, and
 * `stall` SIGSTOPs a worker past ack_wait. A worker kill first looks at what the worker holds: a job
 * whose agent has written `done` while its record is not yet terminal is inside the window
 * between the agent's exit and the record write.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { TERMINAL_RUN_STATES } from "../../src/schemas/run.js";
import type { ActorSlot } from "./fleet.js";
import type { Ledger, LedgerLine } from "./ledger.js";
import type { Observer } from "./observer.js";
import type { Rng } from "./rng.js";
import type { ChaosStack } from "./stack.js";

export const FAULT_KINDS = ["worker-kill", "intake-kill", "server-restart", "stall"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  kind: FaultKind;
  /** Strikes once this fraction of the jobs has finished. */
  at: number;
  /** Index of the slot it aims at (the next live one is taken when that one is down). */
  slot: number;
  /** How long the target stays down (or stopped). */
  pauseMs: number;
}

export interface FaultRecord extends PlannedFault {
  /** When it struck and when its target was back (ms since epoch); skipped faults have neither. */
  startedAt?: number;
  endedAt?: number;
  target?: string;
  workerId?: string;
  /** The pid that was killed or stopped. */
  pid?: number;
  /** A kill: when its process was seen gone (its exit reaped), ms since epoch. */
  diedAt?: number;
  /** A cluster node killed: what it led just before (`meta`, stream names), as its /jsz said. */
  led?: string[];
  /** Jobs the worker held when it was killed or stopped. */
  held?: string[];
  /**
   * Held jobs inside the window between their agent's exit and their record write: for a kill, the
   * worker's agent had finished, its record not terminal; for a stall, the agent finished before
   * the worker was resumed.
   */
  inWindow?: string[];
  skipped?: string;
}

export interface FaultCounts {
  workerKills: number;
  intakeKills: number;
  serverRestarts: number;
  stalls: number;
}

export interface PlanShape {
  workers: number;
  intakes: number;
  /** nats-servers: a server restart aims at one of them (the only one, or a cluster node). */
  servers: number;
  /** Faults strike between these fractions of the jobs finished. */
  faultFrom: number;
  faultTo: number;
}

export function planFaults(counts: FaultCounts, shape: PlanShape, rng: Rng): PlannedFault[] {
  const { workers, intakes, servers, faultFrom, faultTo } = shape;
  const plan: PlannedFault[] = [];
  const add = (kind: FaultKind, n: number, slots: number, pause: [number, number]) => {
    for (let i = 0; i < n; i++) {
      plan.push({ kind, at: faultFrom + rng.next() * (faultTo - faultFrom), slot: rng.int(0, slots - 1), pauseMs: rng.int(pause[0], pause[1]) });
    }
  };
  add("worker-kill", counts.workerKills, workers, [300, 2_000]);
  add("intake-kill", counts.intakeKills, intakes, [500, 2_000]);
  add("server-restart", counts.serverRestarts, servers, [2_000, 4_000]);
  // Past ack_wait (2 s) and the worker TTL (1.5 s): the stalled worker's messages are redelivered.
  add("stall", counts.stalls, workers, [3_000, 5_000]);
  plan.sort((a, b) => a.at - b.at);
  // On a cluster the node kills rotate from the seeded first node: two kills never hit one node only.
  const restarts = plan.filter((f) => f.kind === "server-restart");
  restarts.forEach((f, k) => (f.slot = (restarts[0]!.slot + k) % servers));
  return plan;
}

export interface FaultContext {
  workers: ActorSlot[];
  intakes: ActorSlot[];
  stack: ChaosStack;
  observer: Observer;
  ledger: Ledger;
  /** Fraction of the jobs finished. */
  progress: () => number;
  stallTimeoutMs: number;
  signal: AbortSignal;
  say: (line: string) => void;
}

/** Strikes the plan in order; resolves once every fault has struck and its target is back. */
export async function runFaults(plan: PlannedFault[], ctx: FaultContext): Promise<FaultRecord[]> {
  const records: FaultRecord[] = [];
  const restoring: Array<Promise<void>> = [];
  for (const fault of plan) {
    const record: FaultRecord = { ...fault };
    records.push(record);
    const why = await waitForProgress(fault.at, ctx);
    if (why) {
      record.skipped = why;
      continue;
    }
    restoring.push(strike(record, ctx));
    // A server restart is struck whole before the next fault: two outages never overlap.
    if (fault.kind === "server-restart") await restoring.at(-1);
  }
  await Promise.all(restoring);
  return records;
}

async function waitForProgress(at: number, ctx: FaultContext): Promise<string | undefined> {
  let last = ctx.progress();
  let lastMoved = Date.now();
  while (ctx.progress() < at) {
    if (ctx.signal.aborted) return "run aborted";
    if (ctx.progress() !== last) {
      last = ctx.progress();
      lastMoved = Date.now();
    } else if (Date.now() - lastMoved > ctx.stallTimeoutMs) return `no progress for ${ctx.stallTimeoutMs} ms`;
    await sleep(100);
  }
  return undefined;
}

/** The aimed-at slot when it is up (and has been for a moment), else the next one that is. */
function pick(slots: ActorSlot[], index: number, minUpMs: number): ActorSlot | undefined {
  for (let i = 0; i < slots.length; i++) {
    const s = slots[(index + i) % slots.length]!;
    if (s.state === "up" && Date.now() - s.upSince >= minUpMs) return s;
  }
  return undefined;
}

async function strike(r: FaultRecord, ctx: FaultContext): Promise<void> {
  if (r.kind === "server-restart" && ctx.stack.servers > 1) {
    // One node of the cluster SIGKILLed; the other two carry the R3 streams until it is back.
    const node = r.slot % ctx.stack.servers;
    r.target = ctx.stack.nodeName(node);
    r.led = await ctx.stack.ledBy(node);
    r.startedAt = Date.now();
    const pid = await ctx.stack.killNode(node);
    if (pid !== undefined) r.pid = pid;
    ctx.say(`fault: SIGKILL ${r.target} (pid ${pid}, leading ${r.led.join(" ") || "nothing"}); back in ${r.pauseMs} ms`);
    await sleep(r.pauseMs);
    await ctx.stack.startNode(node);
    r.endedAt = Date.now();
    ctx.say(`${r.target} healthy again after ${r.endedAt - r.startedAt} ms`);
    return;
  }
  if (r.kind === "server-restart") {
    r.target = "nats-server";
    r.startedAt = Date.now();
    ctx.say(`fault: nats-server down for ${r.pauseMs} ms`);
    await ctx.stack.stopServer();
    await sleep(r.pauseMs);
    await ctx.stack.startServer();
    r.endedAt = Date.now();
    return;
  }
  const slots = r.kind === "intake-kill" ? ctx.intakes : ctx.workers;
  const slot = pick(slots, r.slot, r.kind === "intake-kill" ? 1_000 : 2_000);
  if (!slot) {
    r.skipped = "no live target";
    return;
  }
  r.target = slot.name;
  if (slot.workerId) r.workerId = slot.workerId;
  if (slot.pid !== undefined) r.pid = slot.pid;
  if (r.kind === "stall") {
    const held = await heldBy(slot.workerId!, ctx);
    await ctx.observer.refresh(held);
    const open = held.filter((id) => !isTerminal(ctx, id));
    const pid = slot.pid;
    r.held = held;
    r.startedAt = Date.now();
    slot.stall();
    ctx.say(`fault: SIGSTOP ${slot.name} for ${r.pauseMs} ms (holds ${held.length})`);
    await sleep(r.pauseMs);
    // The window, stretched: agents of this worker that finished before it could record them.
    r.inWindow = open.filter((id) => finishedUnder(ctx.ledger.refresh(id), pid));
    slot.resume();
    r.endedAt = Date.now();
    return;
  }
  if (r.kind === "worker-kill") {
    const held = await heldBy(slot.workerId!, ctx);
    await ctx.observer.refresh(held);
    const open = held.filter((id) => !isTerminal(ctx, id));
    const pid = slot.pid;
    // Synchronous from here to the kill: the ledger read is the last look before the SIGKILL.
    r.inWindow = open.filter((id) => finishedUnder(ctx.ledger.refresh(id), pid));
    r.held = held;
  }
  r.startedAt = Date.now();
  const killed = slot.kill9();
  ctx.say(`fault: SIGKILL ${slot.name}${r.held ? ` (holds ${r.held.length}, ${r.inWindow!.length} in the window)` : ""}; back in ${r.pauseMs} ms`);
  await killed;
  r.diedAt = Date.now();
  await sleep(r.pauseMs);
  slot.start();
  r.endedAt = Date.now();
}

function isTerminal(ctx: FaultContext, jobId: string): boolean {
  const run = ctx.observer.runs.get(jobId);
  return run !== undefined && TERMINAL_RUN_STATES.includes(run.state);
}

/** Whether an agent this worker process started has written `done` (unknown starter: any agent). */
function finishedUnder(lines: LedgerLine[], workerPid: number | undefined): boolean {
  const ours = new Set(lines.filter((l) => l.kind === "start" && (l.workerPid === undefined || l.workerPid === workerPid)).map((l) => l.pid));
  return lines.some((l) => l.kind === "done" && ours.has(l.pid));
}

/** Jobs a worker holds: running records naming it, and what its KV `workers` entry lists. */
async function heldBy(workerId: string, ctx: FaultContext): Promise<string[]> {
  const held = new Set(await ctx.observer.inFlight(workerId));
  for (const [id, run] of ctx.observer.runs) if (run.state === "running" && run.workerId === workerId) held.add(id);
  return [...held];
}

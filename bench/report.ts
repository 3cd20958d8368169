/**
 * What `npm run bench` reports: one markdown table (figure, raw-JetStream baseline, ratio,
 * target), bench/results.json with every figure and the machine's facts, and bench/results.svg.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { IntakeFigures } from "./intake.js";
import type { FootprintResult } from "./footprint.js";
import type { OverheadResult } from "./overhead.js";
import type { PickupResult } from "./pickup.js";
import type { RawResult } from "./raw.js";
import type { DrainResult, ScalePoint } from "./scale.js";
import type { Percentiles } from "./stats.js";
import { renderChart } from "./chart.js";

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  node: string;
  natsServer: string;
}

export interface Results {
  mode: "quick" | "full";
  date: string;
  wallSeconds: number;
  machine: Machine;
  raw: RawResult;
  /** Bare Node: an idle process holding one NATS connection, and `node -e ""` start to exit. */
  bareNode: { rssMiB: number; startMs: number };
  intake?: IntakeFigures | undefined;
  pickup: PickupResult;
  overhead: OverheadResult;
  scale: ScalePoint[];
  drain: DrainResult;
  footprint: FootprintResult;
}

export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
  /** The target held; undefined where there is none. */
  met?: boolean | undefined;
}

const num = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const msv = (n: number) => (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(1) : num(n));
const lat = (p: Percentiles) => `p99 ${msv(p.p99)} ms (p50 ${msv(p.p50)}, n ${p.n})`;
const times = (a: number, b: number) => {
  if (!(b > 0)) return "—";
  const r = a / b;
  return `${r >= 10 ? num(r) : r >= 0.01 ? r.toFixed(2) : r.toPrecision(2)}×`;
};

export function rows(r: Results): Row[] {
  const out: Row[] = [];
  const rawPull = `raw publish → waiting pull: p99 ${msv(r.pickup.raw.p99)} ms`;
  for (const s of ["1", "3", "9"] as const) {
    const p = r.pickup.idle[s];
    out.push({ figure: `pickup, idle worker, ${s} bound shard${s === "1" ? "" : "s"}: routed → claimed`, value: lat(p), baseline: rawPull, ratio: times(p.p99, r.pickup.raw.p99), target: "p99 ≤ 20 ms", met: p.p99 <= 20 });
  }
  if (r.pickup.first) {
    const f = r.pickup.first;
    out.push({ figure: "pickup, first job after the worker started (cold)", value: `1/3/9 shards: ${msv(f["1"])} / ${msv(f["3"])} / ${msv(f["9"])} ms`, baseline: rawPull, ratio: "—", target: "reference" });
  }
  out.push({ figure: "pickup, same shard: succeeded → next claimed", value: lat(r.pickup.next), baseline: rawPull, ratio: times(r.pickup.next.p99, r.pickup.raw.p99), target: "p99 ≤ 20 ms", met: r.pickup.next.p99 <= 20 });
  if (r.intake) {
    const i = r.intake;
    out.push({ figure: `intake, 1 replica (${num(i.jobs)} jobs, ${i.inflight} in flight)`, value: `${num(i.intakePerSec)} jobs/s`, baseline: `raw consume → republish loop: ${num(i.rawLoopPerSec)}/s`, ratio: times(i.intakePerSec, i.rawLoopPerSec), target: "≥ 0.5× raw loop", met: i.intakePerSec >= 0.5 * i.rawLoopPerSec });
    out.push({ figure: "intake beside a pipelined raw loop", value: `${num(i.intakePerSec)} jobs/s`, baseline: `raw pipelined (${i.inflight} in flight): ${num(i.rawPipelinedPerSec)}/s`, ratio: times(i.intakePerSec, i.rawPipelinedPerSec), target: "reference" });
  } else {
    out.push({ figure: "intake", value: "not measured (bench/intake.ts missing)", baseline: "—", ratio: "—", target: "≥ 0.5× raw loop" });
  }
  const o = r.overhead;
  out.push({ figure: `per-job overhead (routed → acked − agent; ${o.jobs} jobs)`, value: `p50 ${msv(o.overhead.p50)} ms (p99 ${msv(o.overhead.p99)})`, baseline: `stand-in agent alone: p50 ${msv(o.agentAlone.p50)} ms`, ratio: times(o.overhead.p50, o.agentAlone.p50), target: "p50 ≤ 100 ms", met: o.overhead.p50 <= 100 });
  if (o.followUps) {
    const fu = o.followUps;
    out.push({ figure: `a follow-up's start (preflight → workspace ready; ${fu.jobs} follow-ups of one patch)`, value: `p50 ${msv(fu.workspace.p50)} ms (p99 ${msv(fu.workspace.p99)})`, baseline: `a plain job's: p50 ${msv(fu.plainWorkspace.p50)} ms`, ratio: times(fu.workspace.p50, fu.plainWorkspace.p50), target: "reference" });
  }
  out.push({ figure: "preflight from the cached auth state", value: lat(o.preflightCached), baseline: `codex login status spawn: p50 ${msv(o.preflightSpawn.p50)} ms`, ratio: times(o.preflightCached.p99, o.preflightSpawn.p50), target: "≤ 1 ms", met: o.preflightCached.p99 <= 1 });
  const rawConsume = `raw consume + ack: ${num(r.raw.consumePerSec)}/s`;
  for (const ph of r.drain.phases) {
    out.push({ figure: `drain of ${num(r.drain.jobs)} queued jobs, ${r.drain.shards} shards: ${ph.workers} worker processes × ${r.drain.concurrency} (${num(ph.jobs)} jobs in ${num(ph.seconds)} s)`, value: `${num(ph.jobsPerSec, 1)} jobs/s (CPU ${cpuText(ph.cpu)})`, baseline: rawConsume, ratio: times(ph.jobsPerSec, r.raw.consumePerSec), target: "curve" });
  }
  for (const p of r.scale) {
    out.push({
      figure: `scale: ${p.workers} worker${p.workers > 1 ? "s" : ""} × ${p.shards} shard${p.shards > 1 ? "s" : ""} (${p.jobs} jobs)`,
      value: `drain ${num(p.drainPerSec, 1)}/s · intake ${num(p.intakePerSec)}/s · pickup p99 ${msv(p.pickup.p99)} ms`,
      baseline: rawConsume,
      ratio: times(p.drainPerSec, r.raw.consumePerSec),
      target: "curve",
    });
  }
  const f = r.footprint;
  out.push({ figure: `idle worker, whole process tree (${f.idleWorkerProcesses} process${f.idleWorkerProcesses > 1 ? "es" : ""}, ${f.workerRan})`, value: `${num(f.idleWorkerRssMiB * 1.048576)} MB RSS (${num(f.idleWorkerRssMiB)} MiB)`, baseline: `bare node + 1 NATS connection: ${num(r.bareNode.rssMiB * 1.048576)} MB`, ratio: times(f.idleWorkerRssMiB, r.bareNode.rssMiB), target: "≤ 90 MB", met: f.idleWorkerRssMiB * 1.048576 <= 90 });
  out.push({ figure: `moonmind route org/repo (${f.ran})`, value: `${num(f.routeWallMs)} ms (median of ${f.routeSamplesMs.length})`, baseline: `node -e "": ${num(r.bareNode.startMs)} ms`, ratio: times(f.routeWallMs, r.bareNode.startMs), target: "≤ 300 ms", met: f.routeWallMs <= 300 });
  return out;
}

/** CPU shares as "server 0.31 · workers 0.62 · git+agent 0.70 · intake 0.10 of 2 cores". */
export function cpuText(c: ScalePoint["cpu"]): string {
  return `server ${c.server.toFixed(2)} · workers ${c.workerRuntime.toFixed(2)} · git+agent ${c.jobChildren.toFixed(2)} · intake ${c.bench.toFixed(2)}; machine ${c.machine.toFixed(2)} of ${c.cores} cores`;
}

export function table(r: Results): string {
  const mark = (m: boolean | undefined) => (m === undefined ? "" : m ? " ✓" : " ✗");
  const m = r.machine;
  return [
    `${r.mode} run, ${r.date}: ${m.cores} cores (${m.cpuModel}), ${num(m.memoryGiB, 1)} GiB, node ${m.node}, nats-server ${m.natsServer}, ${num(r.wallSeconds)} s`,
    "",
    "| figure | value | raw-JetStream baseline | ratio | target |",
    "|---|---|---|---:|---|",
    ...rows(r).map((x) => `| ${x.figure} | ${x.value} | ${x.baseline} | ${x.ratio} | ${x.target}${mark(x.met)} |`),
    "",
  ].join("\n");
}

/** Writes results.json and results.svg next to this file; returns their paths. */
/** A full run writes results.json and results.svg; a quick one results.quick.*, so a smoke run never replaces the figures. */
export async function writeResults(r: Results, dir = import.meta.dirname): Promise<{ json: string; svg: string }> {
  const base = r.mode === "quick" ? "results.quick" : "results";
  const json = join(dir, `${base}.json`);
  const svg = join(dir, `${base}.svg`);
  await writeFile(json, `${JSON.stringify({ ...r, table: rows(r) }, null, 2)}\n`);
  await writeFile(svg, await renderChart(r));
  return { json, svg };
}

/**
 * bench/results.svg, drawn with vega-lite: latency percentiles (p50 and p99 of each pickup
 * figure beside raw JetStream, and the per-job overhead, each with its target) above the scale
 * curve (jobs/s against worker processes and against shards, raw consume as a reference line).
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Results } from "./report.js";

const W = 330;

function latencyPanel(r: Results) {
  const bars: Array<{ figure: string; percentile: string; ms: number }> = [];
  const targets: Array<{ figure: string; ms: number; target: string }> = [];
  const add = (figure: string, p: { p50: number; p99: number }, target?: { ms: number; text: string }) => {
    bars.push({ figure, percentile: "p50", ms: p.p50 }, { figure, percentile: "p99", ms: p.p99 });
    if (target) targets.push({ figure, ms: target.ms, target: `target ${target.text} ms` });
  };
  add("raw JetStream: publish → waiting pull", r.pickup.raw);
  for (const s of ["1", "3", "9"] as const) add(`pickup, ${s} bound shard${s === "1" ? "" : "s"}`, r.pickup.idle[s], { ms: 20, text: "p99 ≤ 20" });
  add("pickup: settle → next claim", r.pickup.next, { ms: 20, text: "p99 ≤ 20" });
  add("per-job overhead (routed → acked − agent)", r.overhead.overhead, { ms: 100, text: "p50 ≤ 100" });
  add("the stand-in agent process alone", r.overhead.agentAlone);
  add("preflight, cached auth state", r.overhead.preflightCached, { ms: 1, text: "≤ 1" });
  add("preflight, codex login status spawn", r.overhead.preflightSpawn);
  const order = bars.filter((b) => b.percentile === "p50").map((b) => b.figure);
  // A log axis has no zero: bars start at its floor, a decade below the smallest figure.
  const floor = 10 ** Math.floor(Math.log10(Math.max(1e-4, Math.min(...bars.map((b) => b.ms)))) - 1);
  const ceiling = 10 ** (Math.ceil(Math.log10(Math.max(...bars.map((b) => b.ms), ...targets.map((t) => t.ms))) + 0.3) + 1);
  const y = { field: "figure", type: "nominal", sort: order, title: null, axis: { labelLimit: 340 } } as const;
  const x = { field: "ms", type: "quantitative", scale: { type: "log", domain: [floor, ceiling] }, title: "milliseconds (log scale)" } as const;
  return {
    title: { text: "Latency: p50 and p99 (ticks: targets)", anchor: "start" },
    width: 2 * W - 120,
    height: order.length * 30,
    layer: [
      {
        data: { values: bars },
        mark: { type: "bar", tooltip: true },
        encoding: {
          y,
          yOffset: { field: "percentile" },
          x,
          x2: { datum: floor },
          color: { field: "percentile", type: "nominal", scale: { range: ["#4c78a8", "#f58518"] }, legend: { orient: "top", title: null } },
        },
      },
      {
        data: { values: bars },
        mark: { type: "text", align: "left", dx: 3, fontSize: 9 },
        encoding: { y, yOffset: { field: "percentile" }, x, text: { field: "ms", type: "quantitative", format: ".3~r" } },
      },
      {
        data: { values: targets },
        mark: { type: "tick", color: "#c0392b", thickness: 2, size: 24, orient: "vertical" },
        encoding: { y: { ...y }, x },
      },
      {
        data: { values: targets },
        mark: { type: "text", color: "#c0392b", align: "right", fontSize: 10 },
        encoding: { y: { ...y }, x: { datum: ceiling, scale: x.scale }, text: { field: "target" } },
      },
    ],
  };
}

function scalePanel(r: Results, by: "workers" | "shards") {
  const fixed = by === "workers" ? "shards" : "workers";
  const pts = r.scale.filter((p) => p[fixed] === 3);
  const queued = `drain of ${r.drain.jobs.toLocaleString("en-US")} queued jobs`;
  const series = ["drain (all jobs run)", queued, "intake (while workers drain)"];
  const values = [
    ...pts.map((p) => ({ x: p[by], series: "drain (all jobs run)", perSec: p.drainPerSec })),
    ...pts.map((p) => ({ x: p[by], series: "intake (while workers drain)", perSec: p.intakePerSec })),
    ...(by === "workers" ? r.drain.phases.map((ph) => ({ x: ph.workers, series: queued, perSec: ph.jobsPerSec })) : []),
  ];
  const all = [...values.map((v) => v.perSec), r.raw.consumePerSec].filter((v) => v > 0);
  const yScale = { type: "log", domain: [10 ** Math.floor(Math.log10(Math.min(...all))), 10 ** Math.ceil(Math.log10(Math.max(...all)))] } as const;
  return {
    title: { text: by === "workers" ? "Jobs/s against worker processes (3 shards)" : "Jobs/s against shards (3 worker processes)", anchor: "start" },
    width: W - 40,
    height: 220,
    layer: [
      {
        data: { values },
        mark: { type: "line", point: true, tooltip: true },
        encoding: {
          x: { field: "x", type: "quantitative", title: by === "workers" ? "worker processes" : "shards", scale: { domain: by === "workers" ? [0, 7] : [0, 10] }, axis: { values: by === "workers" ? [1, 3, 6] : [1, 3, 9] } },
          y: { field: "perSec", type: "quantitative", scale: yScale, title: "jobs per second (log scale)" },
          color: { field: "series", type: "nominal", scale: { domain: series, range: ["#4c78a8", "#f58518", "#54a24b"] }, legend: { orient: "bottom", title: null, columns: 1, labelLimit: 300 } },
        },
      },
      ...(values.length === 0
        ? [{ data: { values: [{}] }, mark: { type: "text", text: "not measured in this run (--quick)", color: "#888" } }]
        : []),
      {
        data: { values: [{ perSec: r.raw.consumePerSec, label: `raw JetStream consume + ack: ${Math.round(r.raw.consumePerSec).toLocaleString("en-US")}/s` }] },
        layer: [
          { mark: { type: "rule", strokeDash: [4, 3], color: "#555" }, encoding: { y: { field: "perSec", type: "quantitative", scale: yScale } } },
          { mark: { type: "text", align: "left", x: 4, dy: -6, fontSize: 10, color: "#555" }, encoding: { y: { field: "perSec", type: "quantitative", scale: yScale }, text: { field: "label" } } },
        ],
      },
    ],
  };
}

export async function renderChart(r: Results): Promise<string> {
  const m = r.machine;
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "MoonMind Runtime benchmark",
      subtitle: `${r.mode} run ${r.date.slice(0, 16).replace("T", " ")} · ${m.cores} cores · node ${m.node} · nats-server ${m.natsServer}`,
      anchor: "start",
    },
    background: "white",
    padding: 12,
    vconcat: [latencyPanel(r), { hconcat: [scalePanel(r, "workers"), scalePanel(r, "shards")], resolve: { scale: { color: "independent" } } }],
    config: { font: "Helvetica, Arial, sans-serif", view: { stroke: null }, axis: { labelFontSize: 10, titleFontSize: 11 } },
  } as unknown as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

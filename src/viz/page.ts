/**
 * The live view's one page: markup, styles (page/style.css), script (page/app.js) and every
 * machine's diagram as inline SVG, in one document — nothing is fetched from anywhere else, so
 * it works with the network off. Built once per server start (the layout is the slow part).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PROJECT_ROOT } from "../paths.js";
import { RUNTIMES } from "../schemas/runtime.js";
import { RUN_STATES } from "../schemas/run.js";
import { VERSION } from "../version.js";
import { machineDiagram } from "./diagram.js";
import { layoutDiagram } from "./layout.js";
import { MACHINES } from "./machines.js";
import { diagramSvg } from "./render.js";

/** The assets live beside the sources, which the compiled build (dist/) does not copy. */
const ASSETS = join(PROJECT_ROOT, "src", "viz", "page");

const CAPTIONS: Record<keyof typeof MACHINES, string> = {
  worker: "Worker machine (one per worker)",
  auth: "Auth machine (one per login on a worker)",
  job: "Job machine (one per running job)",
};

export async function buildPage(): Promise<string> {
  const [css, script] = await Promise.all([readFile(join(ASSETS, "style.css"), "utf8"), readFile(join(ASSETS, "app.js"), "utf8")]);
  const figures: string[] = [];
  for (const [name, machine] of Object.entries(MACHINES) as Array<[keyof typeof MACHINES, (typeof MACHINES)[keyof typeof MACHINES]]>) {
    const svg = diagramSvg(await layoutDiagram(machineDiagram(machine)));
    figures.push(`<figure data-diagram="${name}"><figcaption>${CAPTIONS[name]} <small>(click to zoom)</small></figcaption>${svg}<div class="legend" id="legend-${name}"></div></figure>`);
  }
  const options = (values: readonly string[]) => values.map((v) => `<option value="${v}">${v}</option>`).join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MoonMind Runtime — live</title>
<style>${css}</style>
</head>
<body>
<header><h1>MoonMind Runtime — live</h1><span id="conn" class="bad">connecting…</span><small>v${VERSION}</small><span id="message"></span></header>
<main>
<section id="problems" class="wide"></section>
<section id="shards"></section>
<section id="workers"></section>
<section id="jobs" class="wide">
  <h2>Jobs <small id="jobs-count"></small></h2>
  <div class="filters">
    <label>state <select id="filter-state"><option value="">any</option>${options(RUN_STATES)}</select></label>
    <label>runtime <select id="filter-runtime"><option value="">any</option>${options(RUNTIMES)}</select></label>
    <label>repository <input id="filter-repository" type="search" placeholder="part of the repository"></label>
  </div>
  <table><thead><tr><th>job</th><th>state</th><th>machine</th><th>runtime</th><th>repository</th><th>worker</th><th>attempts</th><th>outcome</th><th>updated</th></tr></thead><tbody></tbody></table>
</section>
<section id="detail" class="wide"></section>
<section id="diagrams" class="wide"><h2>Machines</h2><div class="diagrams">${figures.join("\n")}</div></section>
</main>
<script>${script}</script>
</body>
</html>
`;
}

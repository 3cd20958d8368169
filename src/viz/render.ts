/**
 * A laid-out machine diagram as SVG (the page inlines it and marks the live state by its
 * `data-state`), and a diagram as Mermaid `stateDiagram-v2` text for documents.
 */
import type { MachineDiagram } from "./diagram.js";
import { labelText, type LaidOutDiagram, type Point } from "./layout.js";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (n: number) => Math.round(n * 10) / 10;

function pathOf(points: Point[]): string {
  return points.map((p, i) => `${i === 0 ? "M" : "L"}${num(p.x)},${num(p.y)}`).join(" ");
}

export function diagramSvg(d: LaidOutDiagram): string {
  const pad = 8;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="machine" data-machine="${esc(d.machine)}" viewBox="${-pad} ${-pad} ${d.width + 2 * pad} ${d.height + 2 * pad}" width="${d.width + 2 * pad}" height="${d.height + 2 * pad}" font-family="ui-sans-serif, system-ui, sans-serif">`,
    `<defs><marker id="arrow-${esc(d.machine)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>`,
  );
  // Outer states first, so nested ones are drawn over their parent.
  const depth = (id: string): number => {
    const s = d.states.find((x) => x.id === id);
    return s?.parent ? 1 + depth(s.parent) : 0;
  };
  for (const s of [...d.states].sort((a, b) => depth(a.id) - depth(b.id))) {
    const compound = d.states.some((c) => c.parent === s.id);
    const title = s.key + (s.invokes.length > 0 ? `  ⟳ ${s.invokes.join(", ")}` : "");
    out.push(`<g class="state ${s.kind}${compound ? " container" : ""}" data-state="${esc(s.id)}"><title>${esc(s.id)}</title>`);
    out.push(`<rect x="${num(s.x)}" y="${num(s.y)}" width="${num(s.width)}" height="${num(s.height)}" rx="8" fill="${compound ? "#fafafa" : "#fff"}" stroke="#444" stroke-width="1.2"/>`);
    if (s.kind === "final") out.push(`<rect x="${num(s.x + 3)}" y="${num(s.y + 3)}" width="${num(s.width - 6)}" height="${num(s.height - 6)}" rx="6" fill="none" stroke="#444"/>`);
    const ty = compound ? s.y + 20 : s.y + s.height / 2 + 4;
    out.push(`<text x="${num(compound ? s.x + 12 : s.x + s.width / 2)}" y="${num(ty)}" font-size="12" text-anchor="${compound ? "start" : "middle"}">${esc(title)}</text></g>`);
    if (s.initial) {
      const child = d.states.find((c) => c.id === s.initial);
      if (child) {
        const cx = child.x - 18;
        const cy = child.y + child.height / 2;
        out.push(`<g class="initial" data-state="${esc(child.id)}"><circle cx="${num(cx - 6)}" cy="${num(cy)}" r="4" fill="#444"/><path d="M${num(cx - 2)},${num(cy)} L${num(child.x)},${num(cy)}" stroke="#444" marker-end="url(#arrow-${esc(d.machine)})"/></g>`);
      }
    }
  }
  for (const t of d.transitions) {
    if (t.points.length < 2) continue;
    const text = labelText(t);
    out.push(
      `<g class="transition ${t.kind}" data-source="${esc(t.source)}" data-target="${esc(t.target)}" data-event="${esc(t.eventType)}"><title>${esc(`${t.source} → ${t.target}: ${text}`)}</title>`,
      `<path d="${pathOf(t.points)}" fill="none" stroke="#555" stroke-width="1"${t.leaves ? "" : ' stroke-dasharray="3 2"'} marker-end="url(#arrow-${esc(d.machine)})"/>`,
      `<text x="${num(t.labelAt.x)}" y="${num(t.labelAt.y + t.labelAt.height - 4)}" font-size="10" fill="#333">${esc(text)}</text></g>`,
    );
  }
  out.push("</svg>");
  return out.join("\n");
}

/** Mermaid's state ids may not contain dots: the state's key path, joined by `_`. */
function mermaidId(diagram: MachineDiagram, id: string): string {
  return id === diagram.machine ? id : id.slice(diagram.machine.length + 1).replace(/\./g, "_");
}

export function diagramMermaid(diagram: MachineDiagram): string {
  const lines = ["stateDiagram-v2"];
  const root = diagram.states.find((s) => s.parent === undefined)!;
  const write = (parentId: string, indent: string) => {
    const parent = diagram.states.find((s) => s.id === parentId)!;
    if (parent.initial) lines.push(`${indent}[*] --> ${mermaidId(diagram, parent.initial)}`);
    for (const s of diagram.states.filter((c) => c.parent === parentId)) {
      const id = mermaidId(diagram, s.id);
      const children = diagram.states.some((c) => c.parent === s.id);
      if (children) {
        lines.push(`${indent}state ${id} {`);
        write(s.id, `${indent}  `);
        lines.push(`${indent}}`);
      } else if (s.key !== id) {
        lines.push(`${indent}state "${s.key}" as ${id}`);
      }
      if (s.kind === "final") lines.push(`${indent}${id} --> [*]`);
    }
  };
  write(root.id, "  ");
  for (const t of diagram.transitions) {
    const text = labelText(t).replace(/:/g, "#58;");
    lines.push(`  ${mermaidId(diagram, t.source)} --> ${mermaidId(diagram, t.target)} : ${text}`);
  }
  return `${lines.join("\n")}\n`;
}

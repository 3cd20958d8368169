/** A machine's diagram in one of the export formats: Mermaid text, a laid-out SVG, or the model as JSON. */
import type { AnyStateMachine } from "xstate";
import { machineDiagram } from "./diagram.js";
import { layoutDiagram } from "./layout.js";
import { diagramMermaid, diagramSvg } from "./render.js";

export const EXPORT_FORMATS = ["mermaid", "svg", "json"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export async function exportDiagram(machine: AnyStateMachine, format: ExportFormat): Promise<string> {
  const diagram = machineDiagram(machine);
  if (format === "mermaid") return diagramMermaid(diagram);
  if (format === "json") return `${JSON.stringify(diagram, null, 2)}\n`;
  return `${diagramSvg(await layoutDiagram(diagram))}\n`;
}

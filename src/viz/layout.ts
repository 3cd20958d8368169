/**
 * A machine diagram laid out with ELK's layered algorithm (elkjs, pure JavaScript: no browser, no
 * network): nested states inside their parent, edges routed around states with their labels placed.
 * Deterministic for the same diagram, so exported pictures only change when a machine does.
 */
import elkModule from "elkjs/lib/elk.bundled.js";
import type { DiagramState, DiagramTransition, MachineDiagram } from "./diagram.js";

export interface Point {
  x: number;
  y: number;
}

export interface PlacedState extends DiagramState {
  /** Absolute position and size. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedTransition extends DiagramTransition {
  points: Point[];
  labelAt: Point & { width: number; height: number };
}

export interface LaidOutDiagram {
  machine: string;
  width: number;
  height: number;
  states: PlacedState[];
  transitions: PlacedTransition[];
}

const FONT_PX = 12;
const CHAR_PX = 7;
const LABEL_FONT_PX = 10;
const LABEL_CHAR_PX = 5.8;

export function labelText(t: DiagramTransition): string {
  return t.guard ? `${t.label} [${t.guard}]` : t.label;
}

interface ElkNode {
  id: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  children?: ElkNode[];
  edges?: ElkEdge[];
  labels?: Array<{ text: string; width: number; height: number }>;
  layoutOptions?: Record<string, string>;
}

interface ElkEdge {
  id: string;
  sources: string[];
  targets: string[];
  labels?: Array<{ text: string; width: number; height: number; x?: number; y?: number }>;
  sections?: Array<{ startPoint: Point; endPoint: Point; bendPoints?: Point[] }>;
  container?: string;
}

export async function layoutDiagram(diagram: MachineDiagram): Promise<LaidOutDiagram> {
  const byParent = new Map<string | undefined, DiagramState[]>();
  for (const s of diagram.states) byParent.set(s.parent, [...(byParent.get(s.parent) ?? []), s]);
  const root = diagram.states.find((s) => s.parent === undefined)!;

  const toElk = (s: DiagramState): ElkNode => {
    const children = byParent.get(s.id) ?? [];
    const title = s.key + (s.invokes.length > 0 ? `  ⟳ ${s.invokes.join(", ")}` : "");
    const node: ElkNode = { id: s.id, labels: [{ text: title, width: title.length * CHAR_PX, height: FONT_PX + 4 }] };
    if (children.length === 0) {
      node.width = Math.max(90, title.length * CHAR_PX + 24);
      node.height = 36;
    } else {
      node.children = children.map(toElk);
      node.layoutOptions = { "elk.padding": "[top=36,left=16,bottom=16,right=16]", "elk.nodeLabels.placement": "[H_LEFT, V_TOP, INSIDE]" };
    }
    return node;
  };

  const graph: ElkNode = {
    id: "__root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "DOWN",
      "elk.hierarchyHandling": "INCLUDE_CHILDREN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "48",
      "elk.spacing.nodeNode": "32",
      "elk.spacing.edgeLabel": "4",
      "elk.edgeLabels.inline": "false",
      "elk.layered.nodePlacement.strategy": "NETWORK_SIMPLEX",
      "elk.randomSeed": "1",
    },
    children: [toElk(root)],
    edges: diagram.transitions.map((t) => {
      const text = labelText(t);
      return { id: t.id, sources: [t.source], targets: [t.target], labels: [{ text, width: text.length * LABEL_CHAR_PX, height: LABEL_FONT_PX + 4 }] };
    }),
  };

  // A CommonJS module whose types declare an ES default export.
  const ELK = ((elkModule as unknown as { default?: unknown }).default ?? elkModule) as new () => { layout(graph: unknown): Promise<unknown> };
  const elk = new ELK();
  const laid = (await elk.layout(graph as never)) as unknown as ElkNode;

  const placed = new Map<string, PlacedState>();
  const origin = new Map<string, Point>([["__root", { x: 0, y: 0 }]]);
  const place = (n: ElkNode, offset: Point) => {
    const x = offset.x + (n.x ?? 0);
    const y = offset.y + (n.y ?? 0);
    origin.set(n.id, { x, y });
    const state = diagram.states.find((s) => s.id === n.id);
    if (state) placed.set(n.id, { ...state, x, y, width: n.width ?? 0, height: n.height ?? 0 });
    for (const c of n.children ?? []) place(c, { x, y });
  };
  for (const c of laid.children ?? []) place(c, { x: 0, y: 0 });

  // With INCLUDE_CHILDREN every edge is laid out in the root's coordinates, or its container's.
  const edges = new Map<string, ElkEdge>();
  const collect = (n: ElkNode) => {
    for (const e of n.edges ?? []) edges.set(e.id, e);
    for (const c of n.children ?? []) collect(c);
  };
  collect(laid);

  const transitions = diagram.transitions.map((t): PlacedTransition => {
    const e = edges.get(t.id);
    const at = origin.get(e?.container ?? "__root") ?? { x: 0, y: 0 };
    const section = e?.sections?.[0];
    const shift = (p: Point) => ({ x: p.x + at.x, y: p.y + at.y });
    const points = section ? [section.startPoint, ...(section.bendPoints ?? []), section.endPoint].map(shift) : [];
    const label = e?.labels?.[0];
    const labelAt = label ? { ...shift({ x: label.x ?? 0, y: label.y ?? 0 }), width: label.width, height: label.height } : { x: 0, y: 0, width: 0, height: 0 };
    return { ...t, points, labelAt };
  });

  return {
    machine: diagram.machine,
    width: Math.ceil(laid.width ?? 0),
    height: Math.ceil(laid.height ?? 0),
    states: diagram.states.map((s) => placed.get(s.id)!),
    transitions,
  };
}

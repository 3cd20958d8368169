/**
 * Each machine's diagram model (src/viz/diagram.ts) against its definition, walked here from the
 * raw config the machine was written as (not the StateNode tree the model reads): every state and
 * every transition of the definition is in the model, and the model holds nothing else. Then the
 * layout places every state and routes every transition, and the renderers name them all.
 */
import { describe, expect, it } from "vitest";
import type { AnyStateMachine } from "xstate";
import { authMachine } from "../../machines/auth.machine.js";
import { jobMachine } from "../../machines/job.machine.js";
import { workerMachine } from "../../machines/worker.machine.js";
import { machineDiagram } from "../../src/viz/diagram.js";
import { layoutDiagram } from "../../src/viz/layout.js";
import { diagramMermaid, diagramSvg } from "../../src/viz/render.js";

interface RawState {
  states?: Record<string, RawState>;
  on?: Record<string, unknown>;
  after?: Record<string, unknown>;
  always?: unknown;
  invoke?: { src: string; onDone?: unknown; onError?: unknown } | Array<{ src: string; onDone?: unknown; onError?: unknown }>;
}

const asList = (x: unknown): unknown[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** `state|label|target` for every transition of the raw definition, and every state id. */
function fromDefinition(machine: AnyStateMachine): { states: string[]; transitions: string[] } {
  const config = machine.config as RawState & { id: string };
  const states: string[] = [];
  const transitions: string[] = [];
  const walk = (id: string, node: RawState) => {
    states.push(id);
    const parent = id.includes(".") ? id.slice(0, id.lastIndexOf(".")) : id;
    const resolve = (t: unknown): string => {
      const target = typeof t === "string" ? t : (t as { target?: string } | undefined)?.target;
      if (target === undefined) return id; // actions only
      if (target.startsWith("#")) return target.slice(1);
      if (target.startsWith(".")) return `${id}${target}`;
      return `${parent}.${target}`;
    };
    const add = (label: string, defs: unknown) => {
      for (const t of asList(defs)) transitions.push(`${id}|${label}|${resolve(t)}`);
    };
    for (const [event, defs] of Object.entries(node.on ?? {})) add(event, defs);
    for (const [delay, defs] of Object.entries(node.after ?? {})) add(`after ${/^\d+$/.test(delay) ? `${delay} ms` : delay}`, defs);
    add("always", node.always);
    for (const inv of asList(node.invoke) as Array<{ src: string; onDone?: unknown; onError?: unknown }>) {
      add(`done: ${inv.src}`, inv.onDone);
      add(`error: ${inv.src}`, inv.onError);
    }
    for (const [key, child] of Object.entries(node.states ?? {})) walk(`${id}.${key}`, child);
  };
  walk(config.id, config);
  return { states: states.sort(), transitions: transitions.sort() };
}

describe.each([
  ["worker", workerMachine],
  ["auth", authMachine],
  ["job", jobMachine],
] as Array<[string, AnyStateMachine]>)("the %s machine's diagram", (name, machine) => {
  const diagram = machineDiagram(machine);
  const defined = fromDefinition(machine);

  it("holds every state of the definition and no other", () => {
    expect(diagram.machine).toBe(name);
    expect(diagram.states.map((s) => s.id).sort()).toEqual(defined.states);
  });

  it("holds every transition of the definition, with its event, and no other", () => {
    expect(defined.transitions.length).toBeGreaterThan(5);
    expect(diagram.transitions.map((t) => `${t.source}|${t.label}|${t.target}`).sort()).toEqual(defined.transitions);
  });

  it("lays out every state and routes every transition; SVG and Mermaid name them all", async () => {
    const laid = await layoutDiagram(diagram);
    for (const s of laid.states) expect(s.width * s.height, s.id).toBeGreaterThan(0);
    for (const t of laid.transitions) expect(t.points.length, t.id).toBeGreaterThanOrEqual(2);
    const svg = diagramSvg(laid);
    for (const s of diagram.states) expect(svg).toContain(`data-state="${s.id}"`);
    expect(svg.match(/<g class="transition /g)).toHaveLength(diagram.transitions.length);
    const mermaid = diagramMermaid(diagram);
    expect(mermaid.split("\n").filter((l) => l.includes(" --> ") && !l.includes("[*]"))).toHaveLength(diagram.transitions.length);
  });
});

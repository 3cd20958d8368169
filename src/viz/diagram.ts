/**
 * A machine's diagram model, read from its definition (the XState v5 StateNode tree) and nothing
 * else: every state (nested ones under their parent), every transition with its event, guard and
 * kind. Changing a machine changes its picture; nothing here is drawn by hand.
 *
 * The tree is walked here rather than with @xstate/graph's toDirectedGraph, which leaves out
 * eventless (`always`) transitions (@xstate/graph 3.0.4), of which the worker machine's `running` state
 * consists.
 */
import type { AnyStateMachine } from "xstate";

export type StateKind = "atomic" | "compound" | "parallel" | "final" | "history";
export type TransitionKind = "event" | "done" | "error" | "after" | "always";

export interface DiagramState {
  /** The state's id (`worker.serving`); the root is the machine's id. */
  id: string;
  /** Its own key (`serving`). */
  key: string;
  parent?: string;
  kind: StateKind;
  /** The initial child, for a compound state. */
  initial?: string;
  /** What it invokes while in it (the actors' logic names). */
  invokes: string[];
}

export interface DiagramTransition {
  id: string;
  source: string;
  /** The target state; the source itself for a transition that only runs actions. */
  target: string;
  /** What the picture says: `BOOTED`, `done: startupChecks`, `after ttl`, `always`. */
  label: string;
  /** The event as the machine receives it (`xstate.done.actor.0.worker.checking`, '' for always). */
  eventType: string;
  kind: TransitionKind;
  guard?: string;
  /** False for a targetless transition (actions only, the state is not left). */
  leaves: boolean;
}

export interface MachineDiagram {
  machine: string;
  states: DiagramState[];
  transitions: DiagramTransition[];
}

interface StateNodeLike {
  id: string;
  key: string;
  type: StateKind;
  parent?: StateNodeLike;
  states: Record<string, StateNodeLike>;
  initial?: { target: StateNodeLike[] };
  invoke: Array<{ id: string; src: unknown }>;
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
}

interface TransitionLike {
  eventType: string;
  target?: StateNodeLike[] | undefined;
  guard?: unknown;
}

export function machineDiagram(machine: AnyStateMachine): MachineDiagram {
  const states: DiagramState[] = [];
  const transitions: DiagramTransition[] = [];
  const walk = (node: StateNodeLike) => {
    const initial = node.initial?.target[0]?.id;
    states.push({
      id: node.id,
      key: node.key,
      ...(node.parent ? { parent: node.parent.id } : {}),
      kind: node.type,
      ...(initial ? { initial } : {}),
      invokes: node.invoke.map((i) => srcName(i.src)),
    });
    const add = (t: TransitionLike) => {
      const kind = transitionKind(t.eventType);
      const targets = t.target && t.target.length > 0 ? t.target : undefined;
      for (const target of targets ?? [node]) {
        const guard = guardName(t.guard);
        transitions.push({
          id: `${node.id}#${transitions.length}`,
          source: node.id,
          target: target.id,
          label: eventLabel(t.eventType, kind, node),
          eventType: t.eventType,
          kind,
          ...(guard ? { guard } : {}),
          leaves: targets !== undefined,
        });
      }
    };
    for (const defs of node.transitions.values()) for (const t of defs) add(t);
    for (const t of node.always ?? []) add({ ...t, eventType: "" });
    for (const child of Object.values(node.states)) walk(child);
  };
  const root = (machine as unknown as { root: StateNodeLike }).root;
  walk(root);
  return { machine: root.id, states, transitions };
}

function transitionKind(eventType: string): TransitionKind {
  if (eventType === "") return "always";
  if (eventType.startsWith("xstate.done.actor.")) return "done";
  if (eventType.startsWith("xstate.error.actor.")) return "error";
  if (eventType.startsWith("xstate.after.")) return "after";
  return "event";
}

function eventLabel(eventType: string, kind: TransitionKind, node: StateNodeLike): string {
  const invoked = () => node.invoke.map((i) => srcName(i.src)).join(", ") || "invoked";
  switch (kind) {
    case "always":
      return "always";
    case "done":
      return `done: ${invoked()}`;
    case "error":
      return `error: ${invoked()}`;
    case "after": {
      // xstate.after.<delay>.<state id>
      const delay = eventType.slice("xstate.after.".length, eventType.length - node.id.length - 1);
      return `after ${/^\d+$/.test(delay) ? `${delay} ms` : delay}`;
    }
    default:
      return eventType;
  }
}

function srcName(src: unknown): string {
  if (typeof src === "string") return src;
  const named = (src as { config?: { name?: unknown }; name?: unknown } | undefined)?.name;
  return typeof named === "string" && named ? named : "actor";
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === "string") return guard;
  if (typeof guard === "function") return guard.name && guard.name !== "guard" ? guard.name : "guard";
  const g = guard as { type?: unknown; params?: unknown };
  const type = typeof g.type === "string" ? g.type : "guard";
  const params = g.params;
  if (params && typeof params === "object") return `${type} ${Object.values(params).map(String).join(" ")}`;
  return type;
}

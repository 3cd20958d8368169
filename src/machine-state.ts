/**
 * A machine's transitions as status events (`state`), for the live view: XState's inspection API
 * reports every snapshot of the root actor with the event that produced it; this turns those into
 * the diagram's state ids and calls back only when the active states change.
 */
import type { InspectionEvent, StateValue } from "xstate";

export interface MachineTransition {
  /** Active state ids as the diagram names them (`job.running.agent`), leaves only. */
  states: string[];
  /** The event type that caused it (`xstate.init` for the first). */
  event: string;
}

/** The leaf state ids of a state value under the machine id: `{running: "agent"}` → `job.running.agent`. */
export function activeStateIds(machineId: string, value: StateValue): string[] {
  if (typeof value === "string") return [`${machineId}.${value}`];
  const ids: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (child === undefined) continue;
    const inner = activeStateIds(`${machineId}.${key}`, child as StateValue);
    ids.push(...(inner.length > 0 ? inner : [`${machineId}.${key}`]));
  }
  return ids;
}

/**
 * An `inspect` option for createActor: calls `onTransition` whenever the root actor's active
 * states change. Child actors (invoked promises) have snapshots of their own; they are skipped.
 */
export function transitionInspector(
  machineId: string,
  onTransition: (t: MachineTransition, snapshot: { context?: unknown }) => void,
): (ev: InspectionEvent) => void {
  let last = "";
  return (ev) => {
    if (ev.type !== "@xstate.snapshot" || ev.actorRef.sessionId !== ev.rootId) return;
    const value = (ev.snapshot as { value?: StateValue }).value;
    if (value === undefined) return;
    const states = activeStateIds(machineId, value);
    const key = states.join(" ");
    if (key === last) return;
    last = key;
    onTransition({ states, event: ev.event.type }, ev.snapshot as { context?: unknown });
  };
}

/** The live view's state ids are the diagram's: every leaf of every machine maps back to itself. */
import { describe, expect, it } from "vitest";
import { createActor, createMachine, type StateValue } from "xstate";
import { activeStateIds, transitionInspector, type MachineTransition } from "../../src/machine-state.js";
import { machineDiagram } from "../../src/viz/diagram.js";
import { MACHINES } from "../../src/viz/machines.js";

/** `job.running.agent` → `{running: "agent"}` under the machine id. */
function valueOf(id: string): StateValue {
  const [, ...path] = id.split(".");
  return path.reduceRight<StateValue>((inner, key) => ({ [key]: inner }), path.pop()!) as StateValue;
}

describe("activeStateIds", () => {
  for (const [name, machine] of Object.entries(MACHINES)) {
    it(`names every leaf state of the ${name} machine as its diagram does`, () => {
      const diagram = machineDiagram(machine);
      const leaves = diagram.states.filter((s) => s.kind === "atomic" || s.kind === "final");
      expect(leaves.length).toBeGreaterThan(2);
      for (const leaf of leaves) expect(activeStateIds(machine.id, valueOf(leaf.id))).toEqual([leaf.id]);
    });
  }

  it("lists every region of a parallel state", () => {
    expect(activeStateIds("m", { p: { a: "x", b: "y" } })).toEqual(["m.p.a.x", "m.p.b.y"]);
  });
});

describe("transitionInspector", () => {
  it("reports the root actor's changes of state with their event, once each", () => {
    const machine = createMachine({
      id: "m",
      initial: "idle",
      states: { idle: { on: { GO: "busy", NOOP: {} } }, busy: { initial: "a", states: { a: { on: { NEXT: "b" } }, b: {} } } },
    });
    const seen: MachineTransition[] = [];
    const actor = createActor(machine, { inspect: transitionInspector("m", (t) => seen.push(t)) });
    actor.start();
    actor.send({ type: "NOOP" });
    actor.send({ type: "GO" });
    actor.send({ type: "NEXT" });
    expect(seen).toEqual([
      { states: ["m.idle"], event: "xstate.init" },
      { states: ["m.busy.a"], event: "GO" },
      { states: ["m.busy.b"], event: "NEXT" },
    ]);
  });
});

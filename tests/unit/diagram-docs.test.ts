/** docs/diagrams/ holds each machine's diagram as its definition draws it today (`npm run diagrams`). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MACHINES } from "../../src/viz/machines.js";
import { PROJECT_ROOT } from "../../src/paths.js";
import { exportDiagram } from "../../src/viz/export.js";

describe.each(Object.entries(MACHINES))("docs/diagrams for the %s machine", (name, machine) => {
  it.each([
    ["svg", "svg"],
    ["mermaid", "mmd"],
  ] as const)("%s is current", async (format, ext) => {
    const stored = readFileSync(join(PROJECT_ROOT, "docs/diagrams", `${name}.${ext}`), "utf8");
    expect(stored, `docs/diagrams/${name}.${ext} is out of date: run npm run diagrams`).toBe(await exportDiagram(machine, format));
  });
});

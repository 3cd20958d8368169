/** Imports flow one way: machines → (xstate, src/schemas types); src never imports actors. */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mjs)$/.test(name) ? [p] : [];
  });
}

function imports(file: string): Array<{ spec: string; typeOnly: boolean }> {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/^\s*import\s+(type\s+)?[^'"]*?from\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|import\(["']([^"']+)["']\)/gm)].map(
    (m) => ({ spec: (m[2] ?? m[3] ?? m[4])!, typeOnly: m[1] !== undefined }),
  );
}

const top = (file: string, spec: string) =>
  spec.startsWith(".") ? relative(root, resolve(dirname(file), spec)).split("/")[0] : `pkg:${spec}`;

describe("layout", () => {
  it("machines import only xstate, and types from src/schemas and from their own type files", () => {
    const bad: string[] = [];
    for (const file of files(join(root, "machines"))) {
      for (const { spec, typeOnly } of imports(file)) {
        const target = spec.startsWith(".") ? relative(root, resolve(dirname(file), spec)) : spec;
        const ok = spec === "xstate" || (typeOnly && (target.startsWith("src/schemas/") || target.startsWith("machines/")));
        if (!ok) bad.push(`${relative(root, file)} → ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("src never imports actors", () => {
    const bad = files(join(root, "src")).flatMap((file) =>
      imports(file)
        .filter(({ spec }) => top(file, spec) === "actors")
        .map(({ spec }) => `${relative(root, file)} → ${spec}`),
    );
    expect(bad).toEqual([]);
  });

  it("machines have no clocks, randomness or logging of their own", () => {
    for (const file of files(join(root, "machines"))) {
      const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      expect(code, relative(root, file)).not.toMatch(/Date\.now|new Date|Math\.random|console\.|setTimeout|setInterval/);
    }
  });
});

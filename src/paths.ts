/**
 * Where the project is on disk, whether this code runs from its sources (through tsx) or
 * compiled under dist/: the nearest directory above this module that holds the project's
 * package.json. node_modules, .tools and the test fixtures are found from there.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "moonmind-runtime";

/** Whether `dir` holds this project's package.json. */
export function isProjectRoot(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (isProjectRoot(dir)) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${from}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

/** True when this is the compiled build (dist/), false when the sources run through tsx. */
export const COMPILED = import.meta.url.endsWith(".js");

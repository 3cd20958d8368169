/**
 * Where the project is on disk, whether this code runs from its sources (through tsx) or
 * compiled under dist/: the nearest directory above this module that holds the project's
 * package.json. node_modules, .tools and the test fixtures are found from there.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "moonmind-runtime";

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === PACKAGE_NAME) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} above ${from}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

/** True when this is the compiled build (dist/), false when the sources run through tsx. */
export const COMPILED = import.meta.url.endsWith(".js");

#!/usr/bin/env -S node --max-semi-space-size=2
// The `moonmind` command. It runs the compiled build (dist/, `npm run build`) when there is one
// and it is newer than every source file; otherwise the TypeScript sources through tsx, so a
// checkout works with no build step and an edited source is never shadowed by an old build
// (`moonmind --version` and each actor's first log line say which runs).
// MOONMIND_FROM_SOURCE=true forces the sources. The V8 flag caps the young generation: an idle
// actor keeps ~12 MB less resident (docs/architecture.md, "One process per actor"). A .env in the working directory is read if
// present (real environment variables win).
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const stamp = join(root, "dist", "BUILT"); // written last by `npm run build`

/** Newest modification time of the .ts sources (0 where they are not shipped, as in the image). */
function newestSource() {
  let newest = 0;
  for (const top of ["src", "actors", "machines"]) {
    const dir = join(root, top);
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
    }
  }
  return newest;
}

/** The compiled entry, unless the sources have changed since it was built (then they win). */
function compiledBuild() {
  if (/^(true|1|yes|on)$/i.test(process.env.MOONMIND_FROM_SOURCE ?? "") || !existsSync(stamp)) return undefined;
  if (newestSource() > statSync(stamp).mtimeMs) return undefined; // `moonmind --version` says "(from source)"
  return pathToFileURL(join(root, "dist", "src", "cli", "index.js")).href;
}

if (existsSync(".env") && typeof process.loadEnvFile === "function") process.loadEnvFile(".env");
const compiled = compiledBuild();
if (!compiled) (await import("tsx/esm/api")).register();
const { main } = await import(compiled ?? "./index.ts");
await main(process.argv);

/**
 * Which binary runs a runtime's CLI: MOONMIND_<RUNTIME>_BIN › the command on PATH › the pinned
 * npm package installed with the runtime (node_modules/.bin).
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { PROJECT_ROOT } from "../paths.js";

export function resolveBinary(command: string, explicit: string | undefined, path = process.env.PATH ?? ""): string {
  if (explicit) return explicit;
  for (const dir of path.split(delimiter).filter(Boolean)) {
    if (isExecutable(join(dir, command))) return join(dir, command);
  }
  const pinned = join(PROJECT_ROOT, "node_modules", ".bin", command);
  if (isExecutable(pinned)) return pinned;
  return command; // let the spawn fail with ENOENT, which preflight reports with the fix
}

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

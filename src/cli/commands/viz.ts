/**
 * `moonmind viz`: the live view (src/viz/server.ts), run in this process as an actor.
 * `moonmind viz --export mermaid|svg|json [--machine NAME] [--out FILE]`: a machine's diagram,
 * generated from its definition, for documents (docs/diagrams/ is written this way by
 * `npm run diagrams`). Without --machine, every machine, one after another (mermaid, json) or
 * into --out as a directory (svg).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "../../errors.js";
import { EXPORT_FORMATS, exportDiagram, type ExportFormat } from "../../viz/export.js";
import type { CliContext } from "../context.js";

export interface VizOptions {
  export?: string;
  machine?: string;
  out?: string;
}

export async function vizCommand(ctx: CliContext, opts: VizOptions): Promise<number> {
  if (!opts.export) {
    if (opts.machine !== undefined || opts.out !== undefined) throw new UsageError("moonmind viz: --machine and --out go with --export");
    const { runActorCommand } = await import("./actor.js");
    return runActorCommand("viz");
  }
  if (!(EXPORT_FORMATS as readonly string[]).includes(opts.export)) {
    throw new UsageError(`moonmind viz: --export takes ${EXPORT_FORMATS.join(", ")}, not '${opts.export}'`);
  }
  const format = opts.export as ExportFormat;
  const { MACHINES } = await import("../../viz/machines.js"); // loaded only by this verb
  const names = Object.keys(MACHINES) as Array<keyof typeof MACHINES>;
  if (opts.machine !== undefined && !names.includes(opts.machine as keyof typeof MACHINES)) {
    throw new UsageError(`moonmind viz: no machine '${opts.machine}'; one of ${names.join(", ")}`);
  }
  const chosen = opts.machine ? [opts.machine as keyof typeof MACHINES] : names;
  for (const name of chosen) {
    const text = await exportDiagram(MACHINES[name], format);
    if (opts.out && chosen.length > 1) {
      await mkdir(opts.out, { recursive: true });
      await writeFile(join(opts.out, `${name}.${format === "mermaid" ? "mmd" : format}`), text);
    } else if (opts.out) {
      await writeFile(opts.out, text);
    } else {
      ctx.out(chosen.length > 1 && format === "mermaid" ? `%% ${name}\n${text}` : text.trimEnd());
    }
  }
  return 0;
}

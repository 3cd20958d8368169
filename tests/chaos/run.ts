/**
 * `npm run chaos -- [--jobs 1500] [--workers 3] [--intakes 2] [--concurrency 4] [--servers 1|3] [--worker-kills 12]
 *   [--intake-kills 1] [--server-restarts 2] [--stalls 1] [--seed N] [--backlog 300]
 *   [--sleep-min-ms 50] [--sleep-max-ms 800] [--fault-from 0.05] [--fault-to 0.85]
 *   [--drain-timeout-ms 180000] [--stall-timeout-ms 60000] [--fresh-worker-ids] [--keep] [--json]`
 *
 * --servers 3 runs a 3-node nats-server cluster on loopback with R3 streams; each server restart
 * then SIGKILLs one node and restarts it. CHAOS_LOG_LEVEL=info (default warn) for the actors' logs.
 *
 * Progress on stderr; the report on stdout (a table, or JSON with --json). Exit 0 when nothing was
 * lost and no agent completed twice outside the window between its exit and its record write.
 */
import { parseArgs } from "node:util";
import { ZodError } from "zod";
import { runChaos } from "./engine.js";
import { renderReport } from "./report.js";

const NUMERIC = ["jobs", "workers", "intakes", "concurrency", "servers", "worker-kills", "intake-kills", "server-restarts", "stalls", "seed",
  "sleep-min-ms", "sleep-max-ms", "fault-from", "fault-to", "backlog", "drain-timeout-ms", "stall-timeout-ms"] as const;
const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(NUMERIC.map((n) => [n, { type: "string" as const }])),
      "fresh-worker-ids": { type: "boolean" },
      keep: { type: "boolean" },
      json: { type: "boolean" },
    },
    strict: true,
  });
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) if (k !== "json" && v !== undefined) input[camel(k)] = v;
  const report = await runChaos(input);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`);
  if (!values.json) {
    for (const d of report.doubles) {
      const how = [d.window !== "none" ? `in the ${d.window} window` : `outside the window, after ${d.cause}`, ...(d.orphanCompleted ? ["an orphaned agent finished"] : []), d.finalState];
      process.stderr.write(`doubled ${d.jobId} (${how.join(", ")}): ${d.ledger.join(", ")}; faults: ${d.faults.join(", ")}\n`);
    }
    for (const l of report.lostJobs) {
      process.stderr.write(`lost ${l.jobId}: record ${l.state} (${l.workerId ?? "no worker"}) seen terminal at +${l.terminalSeenMs ?? "-"}, ${l.terminalEvents} terminal events; faults: ${l.faults.join(", ")}\n`);
    }
    for (const e of report.unexpectedExits) process.stderr.write(`unexpected exit: ${e.slot} code ${e.code} signal ${e.signal}\n`);
    for (const n of report.notReconnected) process.stderr.write(`not reconnected: ${n}\n`);
    for (const p of report.leftoverProcesses) process.stderr.write(`left-over process ${p.pid}: ${p.cmdline}\n`);
    for (const w of report.leftoverWorkspaces) process.stderr.write(`left-over workspace ${w}\n`);
  }
  return report.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const usage = err instanceof ZodError || String((err as { code?: unknown })?.code ?? "").startsWith("ERR_PARSE_ARGS");
    const text = err instanceof ZodError ? err.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("; ") : usage ? (err as Error).message : String((err as Error)?.stack ?? err);
    process.stderr.write(`chaos: ${text}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);

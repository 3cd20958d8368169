/**
 * Footprint: an idle `moonmind worker`'s resident memory for its whole process tree (VmRSS of
 * the process and every descendant, summed, once it logged "worker serving" and settled for a
 * moment; the worker is the one bench/overhead.ts then runs its jobs on), and the wall time of
 * `moonmind route org/repo` (spawn → exit, median of 5; of 3 with --quick).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { BenchContext } from "./context.js";
import { BIN, ROOT, treeMembers, treeRssMiB, type WorkerProcess } from "./procs.js";
import { median } from "./stats.js";

export interface IdleWorker {
  rssMiB: number;
  processes: number;
  tree: Array<{ pid: number; cmd: string; rssMiB: number }>;
}

export interface FootprintResult {
  idleWorkerRssMiB: number;
  idleWorkerProcesses: number;
  idleWorkerTree: IdleWorker["tree"];
  /** What the idle worker ran: sources (through tsx) or dist/. */
  workerRan: "dist" | "sources";
  routeWallMs: number;
  routeSamplesMs: number[];
  /** dist/src/cli/index.js exists (bin.mjs runs it when it is newer than the sources). */
  distPresent: boolean;
  /** What bin.mjs ran for `moonmind route`: the compiled build, or the sources through tsx (`moonmind --version` then says "(from source)"). */
  ran: "dist" | "sources";
}

const run = promisify(execFile);

/** Bare Node for comparison: an idle process holding one NATS connection (RSS), and `node -e ""` (wall, median of 5). */
export async function benchBareNode(ctx: BenchContext): Promise<{ rssMiB: number; startMs: number }> {
  ctx.progress.step("footprint: bare node");
  const script = `import { connect } from "@nats-io/transport-node"; await connect({ servers: ${JSON.stringify(ctx.url)} }); process.stdout.write("ready\\n"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let rssMiB = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.once("exit", (code) => reject(new Error(`bench: the bare node process exited (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 1_000));
    rssMiB = treeRssMiB(child.pid!);
  } finally {
    child.kill("SIGKILL");
  }
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await run(process.execPath, ["-e", ""]);
    samples.push(performance.now() - t);
  }
  return { rssMiB, startMs: median(samples) };
}

/** An idle worker that serves: its whole tree's RSS once start-up garbage had a moment to go. */
export async function idleFootprint(ctx: BenchContext, worker: WorkerProcess): Promise<IdleWorker> {
  ctx.progress.step("footprint: idle worker");
  await new Promise((r) => setTimeout(r, ctx.quick ? 1_000 : 3_000));
  const tree = treeMembers(worker.pid);
  return { rssMiB: tree.reduce((sum, p) => sum + p.rssMiB, 0), processes: tree.length, tree };
}

/** `moonmind route org/repo`, spawn → exit; with the idle worker's figures, the footprint. */
export async function benchFootprint(ctx: BenchContext, idle: IdleWorker): Promise<FootprintResult> {
  ctx.progress.step("footprint: moonmind route");
  const samples: number[] = [];
  const runs = ctx.quick ? 3 : 5;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await run(process.execPath, [BIN, "route", "org/repo"], { cwd: ctx.dir, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" } });
    samples.push(performance.now() - t);
    ctx.progress.count(i + 1, runs);
  }
  const { stdout: version } = await run(process.execPath, [BIN, "--version"], { cwd: ctx.dir, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" } });
  return {
    idleWorkerRssMiB: idle.rssMiB,
    idleWorkerProcesses: idle.processes,
    idleWorkerTree: idle.tree,
    // tsx transforms through an esbuild service process: one in the tree means the sources ran.
    workerRan: idle.tree.some((p) => /esbuild/.test(p.cmd)) ? "sources" : "dist",
    routeWallMs: median(samples),
    routeSamplesMs: samples,
    distPresent: existsSync(join(ROOT, "dist/src/cli/index.js")),
    ran: /\(from source\)/.test(version) ? "sources" : "dist",
  };
}

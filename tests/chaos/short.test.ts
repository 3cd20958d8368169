/**
 * The short chaos run (tests/chaos/): a few hundred jobs on real worker and intake processes
 * while workers and an intake are SIGKILLed, nats-server restarts and a worker is stopped past
 * ack_wait. Nothing may be lost, stuck or left behind, and no agent may complete twice except
 * inside the window between its exit and its record write. CHAOS_SEED replays a run.
 */
import { describe, expect, it } from "vitest";
import { runChaos } from "./engine.js";
import { renderDetails, verdictFigures, type ChaosReport } from "./report.js";

const seed = process.env.CHAOS_SEED === undefined ? undefined : Number(process.env.CHAOS_SEED);
const verbose = process.env.CHAOS_VERBOSE === "1";

describe("chaos, shortened", () => {
  it("loses nothing and runs no finished agent again under kills, a server restart and a stall", async () => {
    const report: ChaosReport = await runChaos(
      {
        jobs: 200,
        workers: 3,
        intakes: 2,
        concurrency: 4,
        workerKills: 2,
        intakeKills: 1,
        serverRestarts: 1,
        stalls: 1,
        sleepMinMs: 50,
        sleepMaxMs: 300,
        faultTo: 0.75,
        backlog: 100,
        drainTimeoutMs: 45_000,
        stallTimeoutMs: 30_000,
        ...(seed === undefined ? {} : { seed }),
      },
      { say: verbose ? (line) => process.stderr.write(`[chaos] ${line}\n`) : () => undefined },
    );
    const summary = renderDetails(report);
    if (verbose) process.stderr.write(`${summary}\n`);
    const figures = verdictFigures(report);
    expect(figures, `seed ${report.seed} (CHAOS_SEED=${report.seed} replays it)${summary}`).toEqual({
      faultsStruck: 5,
      lost: 0,
      doubledOutsideWindow: 0,
      stuck: 0,
      leftInJobs: 0,
      leftoverProcesses: 0,
      leftoverWorkspaces: 0,
    });
  }, 115_000);
});

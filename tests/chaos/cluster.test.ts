/**
 * The chaos run on a 3-node cluster (tests/chaos/): three nats-servers clustered on loopback, every
 * stream and bucket at R3, NATS_URL naming all three. While the jobs run, one node at a time is
 * SIGKILLed and restarted on the same port, store and conf (twice), and a worker is SIGKILLed.
 * Every job must finish exactly once (nothing lost, stuck, dead-lettered or left behind, no agent
 * completed twice outside the window between its exit and its record write), and the same actor processes must
 * carry on: none exits by itself, and each one's NATS connection answers again after the last
 * node came back. CHAOS_SEED replays a run; CHAOS_VERBOSE=1 prints its progress and report;
 * CHAOS_LOG_LEVEL=info makes the actors log more (their logs are kept with `npm run chaos -- --keep`).
 */
import { describe, expect, it } from "vitest";
import { runChaos } from "./engine.js";
import { renderDetails, verdictFigures, type ChaosReport } from "./report.js";

const seed = process.env.CHAOS_SEED === undefined ? undefined : Number(process.env.CHAOS_SEED);
const verbose = process.env.CHAOS_VERBOSE === "1";

describe("chaos on a 3-node cluster", () => {
  it("loses nothing, runs no finished agent again and keeps every actor connected while nodes are SIGKILLed", async () => {
    const report: ChaosReport = await runChaos(
      {
        servers: 3,
        jobs: 150,
        workers: 3,
        intakes: 2,
        concurrency: 4,
        workerKills: 1,
        intakeKills: 0,
        serverRestarts: 2,
        stalls: 0,
        sleepMinMs: 50,
        sleepMaxMs: 300,
        faultTo: 0.75,
        backlog: 100,
        drainTimeoutMs: 60_000,
        stallTimeoutMs: 30_000,
        ...(seed === undefined ? {} : { seed }),
      },
      { say: verbose ? (line) => process.stderr.write(`[chaos] ${line}\n`) : () => undefined },
    );
    const summary = renderDetails(report);
    if (verbose) process.stderr.write(`${summary}\n`);
    const figures = {
      ...verdictFigures(report),
      servers: report.servers,
      nodeKills: report.serverRestarts,
      unexpectedExits: report.unexpectedExits.length,
      notReconnected: report.notReconnected.length,
      // Terminal, but not finished: a job ends dead_letter only once its deliveries ran out.
      deadLettered: report.states.dead_letter ?? 0,
    };
    expect(figures, `seed ${report.seed} (CHAOS_SEED=${report.seed} replays it)${summary}`).toEqual({
      servers: 3,
      faultsStruck: 3,
      nodeKills: 2,
      lost: 0,
      doubledOutsideWindow: 0,
      stuck: 0,
      leftInJobs: 0,
      leftoverProcesses: 0,
      leftoverWorkspaces: 0,
      unexpectedExits: 0,
      notReconnected: 0,
      deadLettered: 0,
    });
  }, 180_000);
});

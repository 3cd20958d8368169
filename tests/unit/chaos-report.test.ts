import { describe, expect, it } from "vitest";
import type { FaultRecord } from "../chaos/faults.js";
import type { Ledger, LedgerLine } from "../chaos/ledger.js";
import { analyse } from "../chaos/report.js";

const T0 = 1_000_000;
const WORKER_PID = 4242;

/** One job whose agent ran twice: first under the killed worker (done at `firstDoneAt`), then again. */
function doubledAfterKill(firstDoneAt: number) {
  const lines: LedgerLine[] = [
    { kind: "start", pid: 10, at: T0 + 100, workerPid: WORKER_PID },
    { kind: "done", pid: 10, at: firstDoneAt },
    { kind: "start", pid: 11, at: T0 + 5_000, workerPid: 5151 },
    { kind: "done", pid: 11, at: T0 + 5_200 },
  ];
  const ledger: Ledger = { refresh: () => lines, lines: () => lines, count: (_id, kind) => lines.filter((l) => l.kind === kind).length, close: () => undefined };
  const kill: FaultRecord = { kind: "worker-kill", at: 0.5, slot: 0, pauseMs: 1_000, pid: WORKER_PID, startedAt: T0 + 300, diedAt: T0 + 310, endedAt: T0 + 1_400, inWindow: [] };
  return analyse({
    jobIds: ["j1"],
    ledger,
    runs: new Map([["j1", { state: "succeeded", workerId: "w2", attempts: 2, revision: 9, terminalSeenAt: T0 + 5_300 }]]),
    terminalEvents: new Map([["j1", 1]]),
    faults: [kill],
    startedAt: T0,
  });
}

describe("chaos report: an agent finishing as its worker is killed", () => {
  it("counts a `done` written between the SIGKILL and the worker's death as inside the window", () => {
    const r = doubledAfterKill(T0 + 320);
    expect(r.doubles.map((d) => [d.window, d.orphanCompleted])).toEqual([["dying", false]]);
    expect([r.doubledInDyingWindow, r.doubledOutsideWindow, r.doubledByOrphans]).toEqual([1, 0, 0]);
  });

  it("counts an agent that outlived its worker and finished later as a double outside the window", () => {
    const r = doubledAfterKill(T0 + 500);
    expect(r.doubles.map((d) => [d.window, d.orphanCompleted, d.cause])).toEqual([["none", true, "worker-kill"]]);
    expect([r.doubledInDyingWindow, r.doubledOutsideWindow, r.doubledByOrphans]).toEqual([0, 1, 1]);
  });
});

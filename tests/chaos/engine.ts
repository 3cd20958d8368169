/**
 * A chaos run: a real nats-server (or a 3-node cluster with R3 streams, `servers: 3`), intake
 * replicas and worker processes, the stand-in agent with a ledger, and faults struck on a seeded
 * schedule while the jobs run (worker and intake SIGKILLs, server restarts — on a cluster a
 * SIGKILLed node —, worker stalls past ack_wait; see faults.ts). It then waits for every job to
 * finish (bounded), checks that every actor answers NATS again by itself (its health file,
 * rewritten only while its connection answers a ping, is newer than the last server fault),
 * stops everything and reports what was lost, doubled and left behind.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { HEALTH_INTERVAL_MS, healthDir } from "../../src/health.js";
import { connectNats } from "../../src/nats/connect.js";
import { planFaults, runFaults, type FaultRecord } from "./faults.js";
import { createSlot, type ActorSlot, type UnexpectedExit } from "./fleet.js";
import { watchLedger } from "./ledger.js";
import { leftoverWorkspaces, processesMentioning } from "./leftovers.js";
import { observe } from "./observer.js";
import { ChaosOptionsSchema, type ChaosInput } from "./options.js";
import { analyse, type ChaosReport } from "./report.js";
import { createRng, randomSeed } from "./rng.js";
import { createChaosStack } from "./stack.js";
import { makeJobs, submitPaced, type SubmitStats } from "./submit.js";

export interface ChaosHooks {
  /** Progress lines (default: stderr). */
  say?: (line: string) => void;
}

const STOP_WAIT_MS = 15_000;
/** Two health rewrites and a reconnect: an actor whose connection answers has rewritten its file by then. */
const RECONNECT_WAIT_MS = 2 * HEALTH_INTERVAL_MS + 5_000;

export async function runChaos(input: ChaosInput = {}, hooks: ChaosHooks = {}): Promise<ChaosReport> {
  const opts = ChaosOptionsSchema.parse(input);
  const say = hooks.say ?? ((line: string) => process.stderr.write(`[chaos] ${line}\n`));
  const seed = opts.seed ?? randomSeed();
  const rng = createRng(seed);
  const startedAt = Date.now();
  say(`seed ${seed} (replay with --seed ${seed}): ${opts.jobs} jobs, ${opts.workers} workers × ${opts.concurrency}, ${opts.intakes} intakes${opts.servers > 1 ? `, ${opts.servers} clustered nats-servers (R${opts.servers})` : ""}`);

  const stack = await createChaosStack(opts.concurrency, opts.servers);
  if (stack.formAttempts > 1) say(`the cluster formed on fresh start ${stack.formAttempts} (its meta group left a server out before)`);
  const ledger = watchLedger(stack.ledgerDir);
  const slots: ActorSlot[] = [];
  const aborter = new AbortController();
  let nc: NatsConnection | undefined;
  try {
    nc = await connectNats({ servers: stack.url, name: "chaos-monitor" });
    const observer = await observe(nc);
    const unexpected: UnexpectedExit[] = [];
    const onUnexpectedExit = (e: UnexpectedExit) => {
      unexpected.push(e);
      say(`${e.slot} exited by itself (code ${e.code}, signal ${e.signal}): restarting`);
    };
    const intakes = Array.from({ length: opts.intakes }, (_, i) =>
      createSlot({ kind: "intake", name: `intake-${i + 1}`, env: stack.env, logDir: stack.logDir, onUnexpectedExit }),
    );
    const workers = Array.from({ length: opts.workers }, (_, i) =>
      createSlot({
        kind: "worker",
        name: `w${i + 1}`,
        env: stack.env,
        logDir: stack.logDir,
        dataDir: join(stack.dir, `var-w${i + 1}`),
        workerId: (n) => (opts.freshWorkerIds ? `chaos-w${i + 1}-${n}` : `chaos-w${i + 1}`),
        onUnexpectedExit,
      }),
    );
    slots.push(...intakes, ...workers);
    for (const s of slots) s.start();

    const plan = planFaults(opts, opts, rng);
    const jobs = makeJobs(opts.jobs, seed.toString(36), stack.ledgerDir, stack.repo, () => rng.int(opts.sleepMinMs, opts.sleepMaxMs));
    const jobIds = jobs.map((j) => j.id);
    const stats: SubmitStats = { submitted: 0, retries: 0, lastSubmitAt: Date.now() };
    const finished = () => observer.terminalCount();
    const progress = () => finished() / opts.jobs;
    const notFinished = (upTo: number) => jobIds.slice(0, upTo).filter((id) => !observer.isTerminal(id));

    // Reads by key now and then, in case the watch missed writes while the server was away.
    const healing = (async () => {
      while (!aborter.signal.aborted) {
        await sleep(5_000, undefined, { signal: aborter.signal }).catch(() => undefined);
        await observer.refresh(notFinished(Math.min(opts.jobs, stats.submitted + 200))).catch(() => undefined);
        say(`progress: ${finished()}/${opts.jobs} finished, ${stats.submitted} submitted, ${plan.filter((f) => progress() >= f.at).length}/${plan.length} faults due`);
      }
    })();

    const submitting = submitPaced(jetstream(nc), jobs, { backlog: opts.backlog, finished, signal: aborter.signal, stats });
    const faults: FaultRecord[] = await runFaults(plan, {
      workers,
      intakes,
      stack,
      observer,
      ledger,
      progress,
      stallTimeoutMs: opts.stallTimeoutMs,
      signal: aborter.signal,
      say,
    });
    const lastFault = Math.max(startedAt, ...faults.map((f) => f.endedAt ?? 0));
    say(`faults done (${faults.filter((f) => !f.skipped).length} struck); draining`);
    const deadline = lastFault + opts.drainTimeoutMs;
    const submitDone = await Promise.race([
      submitting.then(() => true),
      sleep(Math.max(0, deadline - Date.now()), undefined, { signal: aborter.signal }).then(() => false, () => false),
    ]);

    // Drain: every job in a terminal run state, then nothing left in JOBS, or the deadline.
    const drainFrom = Math.max(lastFault, submitDone ? stats.lastSubmitAt : lastFault);
    let lastRead = 0;
    while (submitDone && finished() < opts.jobs && Date.now() < deadline) {
      if (Date.now() - lastRead > 3_000) {
        lastRead = Date.now();
        await observer.refresh(notFinished(opts.jobs)).catch(() => undefined);
      }
      await sleep(250);
    }
    const drainMs = Date.now() - drainFrom;
    say(`${finished()}/${opts.jobs} finished ${(drainMs / 1_000).toFixed(1)} s after the last fault`);
    while (Date.now() < deadline && (await observer.jobsLeft().catch(() => 1)) > 0) await sleep(250);
    aborter.abort();
    await healing;

    const lastServerFault = Math.max(0, ...faults.filter((f) => f.kind === "server-restart" && !f.skipped).map((f) => f.endedAt ?? 0));
    const notReconnected = await notAnsweringSince(slots, stack.env.MOONMIND_DATA_DIR!, lastServerFault, RECONNECT_WAIT_MS);
    for (const n of notReconnected) say(`not reconnected: ${n}`);

    say("stopping the actors");
    const stopped = await Promise.all(slots.map((s) => s.stop(STOP_WAIT_MS)));
    await observer.refresh(jobIds).catch(() => undefined);
    const terminalEvents = await observer.terminalEvents().catch(() => new Map<string, number>());
    const leftInJobs = await observer.jobsLeft().catch(() => "unknown" as const);
    await observer.close();
    await nc.close();
    await stack.stopServer();
    ledger.close();

    const leftoverProcesses = processesMentioning(stack.dir);
    for (const p of leftoverProcesses) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const count = (kind: FaultRecord["kind"]) => faults.filter((f) => f.kind === kind && !f.skipped).length;
    const figures = analyse({ jobIds, ledger, runs: observer.runs, terminalEvents, faults, startedAt });
    const report: ChaosReport = {
      seed,
      startedAt,
      jobs: opts.jobs,
      workers: opts.workers,
      intakes: opts.intakes,
      concurrency: opts.concurrency,
      workerKills: count("worker-kill"),
      intakeKills: count("intake-kill"),
      serverRestarts: count("server-restart"),
      stalls: count("stall"),
      skippedFaults: faults.filter((f) => f.skipped).length,
      servers: opts.servers,
      unexpectedExits: unexpected,
      notReconnected,
      ...figures,
      leftInJobs,
      leftoverWorkspaces: leftoverWorkspaces(workers.map((w) => join(w.dataDir!, "workspaces"))),
      leftoverProcesses,
      submitRetries: stats.retries,
      stopForced: stopped.filter((ok) => !ok).length,
      drainMs,
      totalMs: Date.now() - startedAt,
      faults,
      ok: figures.lost === 0 && figures.doubledOutsideWindow === 0,
    };
    if (opts.keep) {
      await writeFile(join(stack.dir, "report.json"), JSON.stringify(report, null, 2));
      say(`kept ${stack.dir} (report.json, logs/, ledger/, nats-store/)`);
    }
    return report;
  } finally {
    aborter.abort();
    await nc?.close().catch(() => undefined);
    await Promise.all(slots.map((s) => s.stop(2_000)));
    ledger.close();
    await stack.close(opts.keep);
  }
}

/**
 * Slots whose current process has not said, since `since`, that its NATS connection answers: its
 * health file (<data dir>/health/<actor>.<instance>.json) is rewritten only after a ping came
 * back. Waits (bounded) for every slot; returns `<slot>: <why>` for the ones that never did.
 */
async function notAnsweringSince(slots: ActorSlot[], sharedDataDir: string, since: number, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing: string[] = [];
    for (const s of slots) {
      if (s.state !== "up" || s.pid === undefined) {
        missing.push(`${s.name}: ${s.state}`);
        continue;
      }
      const instance = s.kind === "worker" ? s.workerId : `${s.kind}-${s.pid}`;
      const file = join(healthDir(s.dataDir ?? sharedDataDir), `${s.kind}.${instance}.json`);
      const record = await readFile(file, "utf8").then((t) => JSON.parse(t) as { pid?: number; at?: string }, () => undefined);
      if (!record) missing.push(`${s.name}: no health file (${file})`);
      else if (record.pid !== s.pid) missing.push(`${s.name}: health file of pid ${record.pid}, not ${s.pid}`);
      else if (!(Date.parse(record.at ?? "") > since)) missing.push(`${s.name}: last answered at ${record.at}, before the last server fault ended`);
    }
    if (missing.length === 0 || Date.now() >= deadline) return missing;
    await sleep(250);
  }
}

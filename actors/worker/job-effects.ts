/**
 * The job machine's effects on a real worker: KV run records, the workspace, the agent CLI,
 * the object store, status events and the JetStream message itself.
 */
import { readFile, rm } from "node:fs/promises";
import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ObjectStore } from "@nats-io/obj";
import { fromPromise } from "xstate";
import { jobMachine, type AgentResult, type Collected, type JobReport } from "../../machines/job.machine.js";
import { RetryableError } from "../../src/errors.js";
import type { StatusPublisher } from "../../src/events.js";
import { LogBatcher } from "../../src/logs.js";
import type { Logger } from "../../src/logger.js";
import { claimed, decideClaim } from "../../src/runs/claim.js";
import { finished, ownedBy, requeued } from "../../src/runs/record.js";
import { RunConflictError, type RunStore } from "../../src/runs/store.js";
import { runProcess } from "../../src/runtimes/process.js";
import type { OutputEvent, PrivateHome } from "../../src/runtimes/types.js";
import { chownTree, type AgentUser } from "../../src/runtimes/agent-user.js";
import { redact, redactText } from "../../src/secrets.js";
import { jobMeta, type JobRequest } from "../../src/schemas/job.js";
import type { RunRecord } from "../../src/schemas/run.js";
import { ARTIFACTS, artifactKey, type ArtifactName } from "../../src/subjects.js";
import type { PreparedWorkspace, WorkspaceManager } from "../../src/workspace/git.js";
import type { Login } from "./logins.js";

export interface JobDeps {
  workerId: string;
  nc: NatsConnection;
  runs: RunStore;
  artifacts: ObjectStore;
  publisher: StatusPublisher;
  workspaces: WorkspaceManager;
  /** The login the job's shard runs on: its adapter, volume and auth state. */
  login: Login;
  isWorkerAlive: (workerId: string) => Promise<boolean>;
  /** The user agent CLIs run as, when the worker runs as root and one is configured. */
  agentUser?: AgentUser | undefined;
  log: Logger;
  settings: {
    jobTimeoutMs: number;
    killGraceMs: number;
    workerTtlMs: number;
    logBatchMs: number;
    logBatchLines: number;
  };
}

const nowIso = () => new Date().toISOString();

/** The machine with every effect bound to one message of one job. */
export function provideJobMachine(deps: JobDeps, msg: JsMsg, job: JobRequest) {
  const { runs, publisher, workspaces, login, log } = deps;
  const adapter = login.adapter;
  const meta = jobMeta(job);
  const prepared = new Map<string, { ws: PreparedWorkspace; home: PrivateHome }>();
  const batcher = new LogBatcher(deps.nc, job.id, { intervalMs: deps.settings.logBatchMs, maxLines: deps.settings.logBatchLines });
  let attempt = 0;
  let startedAt = 0;

  /** Writes the record only while this worker's attempt still owns it. */
  const updateOwned = (change: (r: RunRecord) => RunRecord) =>
    runs.update(job.id, (r) => {
      if (!ownedBy(r, deps.workerId, attempt)) {
        throw new RunConflictError(`run ${job.id} is no longer held by ${deps.workerId} attempt ${attempt}`);
      }
      return change(r);
    });

  const putArtifact = async (name: ArtifactName, data: string): Promise<string> => {
    const key = artifactKey(job.id, name);
    await deps.artifacts.putBlob({ name: key }, new TextEncoder().encode(data));
    return key;
  };

  const saveOutput = async (): Promise<string[]> => {
    batcher.flush();
    const text = batcher.text();
    if (text.length === 0) return [];
    try {
      return [await putArtifact(ARTIFACTS.outputLog, text)];
    } catch (err) {
      log.warn({ err, jobId: job.id }, "could not store output.log");
      return [];
    }
  };

  return jobMachine.provide({
    actors: {
      claim: fromPromise(async () => {
        for (let i = 0; i < 5; i++) {
          const current = await runs.get(job.id);
          if (!current) return { kind: "skip" as const, reason: "no run record (deleted by an operator)" };
          const holder = current.record.workerId;
          const alive = holder !== undefined && holder !== deps.workerId && (await deps.isWorkerAlive(holder));
          const decision = decideClaim(current.record, deps.workerId, alive);
          if (decision.kind === "skip") return decision;
          if (decision.kind === "busy") {
            return { kind: "busy" as const, holder: decision.holder, retryInMs: deps.settings.workerTtlMs };
          }
          if (decision.kind === "exhausted") {
            // Take ownership so the dead-letter write below is ours alone.
            const next = { ...current.record, state: "running" as const, workerId: deps.workerId, updatedAt: nowIso() };
            try {
              await runs.replace(job.id, next, current.revision);
            } catch (err) {
              if (err instanceof RunConflictError) continue;
              throw err;
            }
            attempt = current.record.attempts;
            return { kind: "exhausted" as const, attempt };
          }
          const taken = claimed(current.record, deps.workerId, nowIso());
          // How many jobs still wait behind this one on its shard, as the server counted at delivery.
          const next = { ...taken, diagnostics: { ...taken.diagnostics, pending: msg.info.pending } };
          try {
            await runs.replace(job.id, next, current.revision);
          } catch (err) {
            if (err instanceof RunConflictError) continue;
            throw err;
          }
          attempt = next.attempts;
          return { kind: "claimed" as const, attempt };
        }
        throw new RunConflictError(`run ${job.id} kept changing while claiming it`);
      }),

      preflight: fromPromise(async () => {
        const result = await login.preflight();
        await updateOwned((r) => ({
          ...r,
          preflight: result,
          diagnostics: { ...r.diagnostics, volumeName: login.volume.name, volumePath: login.volume.path },
          updatedAt: nowIso(),
        }));
        return result;
      }),

      prepareWorkspace: fromPromise(async () => {
        const ws = await workspaces.prepare(job);
        // The run's private home lives in the job's directory and goes with it.
        const home = await adapter.prepareHome(login.volume, ws.dir).catch(async (err: unknown) => {
          await workspaces.remove(ws.dir);
          throw err;
        });
        if (deps.agentUser) await chownTree(ws.dir, deps.agentUser);
        prepared.set(ws.dir, { ws, home });
        startedAt = Date.now();
        await updateOwned((r) => ({ ...r, startedAt: nowIso(), updatedAt: nowIso() }));
        return { dir: ws.dir, baseCommit: ws.baseCommit };
      }),

      runAgent: fromPromise(async ({ input, signal }): Promise<AgentResult> => {
        const { ws, home } = prepared.get(input.workspace.dir)!;
        const inv = { ...adapter.invocation(job, ws, home), ...(deps.agentUser ? { user: deps.agentUser } : {}) };
        const parse = adapter.createParser();
        let lastMessage: string | undefined;
        let verdict: Extract<OutputEvent, { kind: "result" }> | undefined;
        const errors: string[] = [];
        const result = await runProcess(inv, {
          signal,
          // The machine's own timer stops the job first; this bound only guards against a stuck kill.
          timeoutMs: deps.settings.jobTimeoutMs + deps.settings.killGraceMs + 5_000,
          killGraceMs: deps.settings.killGraceMs,
          onLine: (line, stream) => {
            batcher.push(stream === "stderr" ? `[stderr] ${line}` : line);
            for (const ev of parse(line)) {
              if (ev.kind === "message") lastMessage = ev.text;
              else if (ev.kind === "error") errors.push(ev.text);
              else if (ev.kind === "result") verdict = ev;
              else report({ type: "progress", message: redactText(ev.text.slice(0, 500)) });
            }
            if (stream === "stderr" && adapter.loginExpired(line)) errors.push(line);
          },
        });
        batcher.flush();
        const writeBack = await home.writeBack().catch((err: unknown) => {
          log.warn({ err, jobId: job.id }, "could not write rotated credentials back to the volume");
          return "failed";
        });
        if (writeBack !== "unchanged") log.info({ jobId: job.id, volume: login.volume.name, writeBack }, "credentials write-back");
        // Credentials never outlive the run, even where workspaces are kept.
        await rm(home.dir, { recursive: true, force: true });
        if (inv.lastMessageFile) {
          const fromFile = (await readFile(inv.lastMessageFile, "utf8").catch(() => "")).trim();
          if (fromFile) lastMessage = fromFile;
        }
        if (result.spawnError) {
          throw new RetryableError("AGENT_UNAVAILABLE", `${adapter.runtime} CLI could not start: ${result.spawnError.message}`);
        }
        const ok =
          result.exitCode === 0 &&
          !result.cancelled &&
          verdict?.ok !== false &&
          (!adapter.requiresResult || verdict?.ok === true);
        if (ok) return { exitCode: 0, lastMessage };
        const evidence = errors.join("\n");
        const authExpired = adapter.loginExpired(evidence);
        if (authExpired) login.loginExpired(redactText(errors.find((e) => adapter.loginExpired(e)) ?? evidence));
        const why =
          errors.at(-1) ??
          (result.exitCode === 0 ? `${adapter.runtime} ended without finishing its turn` : `${adapter.runtime} exited with code ${result.exitCode}`);
        return {
          exitCode: result.exitCode === 0 ? 1 : result.exitCode,
          lastMessage,
          authExpired,
          error: { code: authExpired ? "AUTH_EXPIRED" : "AGENT_FAILED", message: redactText(why.slice(0, 2_000)) },
        };
      }),

      collectArtifacts: fromPromise(async ({ input }): Promise<Collected> => {
        const { ws } = prepared.get(input.workspace.dir)!;
        const patch = await workspaces.diff(ws);
        const keys = await saveOutput();
        if (patch.length > 0) keys.push(await putArtifact(ARTIFACTS.changesPatch, patch));
        const message = input.agent.lastMessage ? redactText(input.agent.lastMessage).trim() : undefined;
        if (message) keys.push(await putArtifact(ARTIFACTS.lastMessage, `${message}\n`));
        return {
          outcome: patch.length > 0 ? "CHANGES_READY" : "NO_CHANGES",
          artifacts: keys,
          summary: message ? message.slice(0, 500) : undefined,
        };
      }),

      complete: fromPromise(async ({ input }) => {
        await updateOwned((r) =>
          finished(
            r,
            nowIso(),
            "succeeded",
            { outcome: input.collected.outcome, summary: input.collected.summary, durationMs: Date.now() - startedAt },
            input.collected.artifacts,
          ),
        );
      }),

      requeue: fromPromise(async ({ input }) => {
        const at = new Date(Date.now() + input.delayMs).toISOString();
        await updateOwned((r) => requeued(r, nowIso(), at, input.reason, false));
      }),

      recordRetry: fromPromise(async ({ input }) => {
        const keys = await saveOutput();
        const at = new Date(Date.now() + input.delayMs).toISOString();
        await updateOwned((r) => ({ ...requeued(r, nowIso(), at, input.error, true), artifacts: [...new Set([...r.artifacts, ...keys])] }));
      }),

      recordFailure: fromPromise(async ({ input }) => {
        const keys = await saveOutput();
        const outcome = input.state === "cancelled" ? "CANCELLED" : "FAILED";
        const stored = await updateOwned((r) => finished(r, nowIso(), input.state, { outcome, error: input.error }, keys));
        if (input.state === "dead_letter" && stored) {
          await publisher.dead({
            jobId: job.id,
            stage: "worker",
            reason: `${input.error.code}: ${input.error.message}`,
            subject: msg.subject,
            original: redact(job),
          });
        }
      }),

      cleanup: fromPromise(async ({ input }) => {
        batcher.flush();
        if (input.workspace) {
          prepared.delete(input.workspace.dir);
          await workspaces.remove(input.workspace.dir);
        }
      }),
    },
    actions: {
      report: (_, params: JobReport) => report(params),
      keepAlive: () => msg.working(),
    },
  });

  function report(r: JobReport | { type: "progress"; message: string }): void {
    const body =
      r.type === "cancelled"
        ? { ...r, workerId: deps.workerId }
        : r.type === "progress"
          ? { ...r, workerId: deps.workerId, attempt }
          : r.type === "succeeded"
            ? { ...r, workerId: deps.workerId, durationMs: Date.now() - startedAt }
            : r.type === "started"
              ? { ...r, workerId: deps.workerId, runtime: adapter.runtime }
              : { ...r, workerId: deps.workerId };
    publisher.job(job.id, body, meta).catch((err: unknown) => log.warn({ err, jobId: job.id, event: r.type }, "status event not published"));
  }
}

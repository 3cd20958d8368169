/**
 * The job machine's effects on a real worker: KV run records, the workspace, the agent CLI,
 * the object store, status events and the JetStream message itself.
 */
import { rm } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { readAgentFile, removeAgentTree } from "../../src/runtimes/agent-files.js";
import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ObjectStore } from "@nats-io/obj";
import { fromPromise } from "xstate";
import { jobMachine, type AgentResult, type Collected, type JobReport, type Workspace } from "../../machines/job.machine.js";
import { RetryableError } from "../../src/errors.js";
import { persist } from "../../src/runs/persist.js";
import type { StatusPublisher } from "../../src/events.js";
import { LogBatcher } from "../../src/logs.js";
import type { Logger } from "../../src/logger.js";
import { agentFinished, finished, ownedBy, requeued } from "../../src/runs/record.js";
import { RunConflictError, type RunStore, type StoredRun } from "../../src/runs/store.js";
import { runProcess } from "../../src/runtimes/process.js";
import type { OutputEvent, PrivateHome, UsageLimit } from "../../src/runtimes/types.js";
import type { RunUsage } from "../../src/schemas/run.js";
import { addUsage, withAttemptUsage } from "../../src/runs/usage.js";
import { chownTree, type AgentUser } from "../../src/runtimes/agent-user.js";
import { redact, redactText } from "../../src/secrets.js";
import { jobMeta, type JobRequest } from "../../src/schemas/job.js";
import { TERMINAL_RUN_STATES, type RunRecord } from "../../src/schemas/run.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { ARTIFACTS, STREAMS, artifactKey, jobEventSubject, type ArtifactName } from "../../src/subjects.js";
import type { PreparedWorkspace, WorkspaceManager } from "../../src/workspace/git.js";
import { followUpLine, keptSession, planFollowUp, type FollowUp } from "./follow-up.js";
import { publishResult } from "./publish-result.js";
import { claimRun } from "./job-claim.js";
import { SESSION_ID, type AgentSession } from "../../src/runtimes/session.js";
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
  /**
   * Whether a run's holder still holds it: alive (a heartbeat within its TTL), and not a later
   * life of that worker id that neither claimed the run (started after `claimedAt`) nor lists it
   * in flight — a worker restarted under its old id does not run what its killed life held.
   */
  holdsRun: (holder: string, jobId: string, claimedAt: string | undefined) => Promise<boolean>;
  /**
   * When this worker first found a run's holder silent (`<job>:<holder>` → ms). After a server
   * outage every worker looks silent for a moment: a run is taken over only if its holder is
   * still silent one TTL later.
   */
  silentSince: Map<string, number>;
  /** The user agent CLIs run as, when the worker runs as root and one is configured. */
  agentUser?: AgentUser | undefined;
  /** Agents run in bubblewrap (their own PID namespace, only their run's directory writable) when set. */
  sandbox?: { bwrap: string; hide: string[] } | undefined;
  log: Logger;
  settings: {
    jobTimeoutMs: number;
    killGraceMs: number;
    workerTtlMs: number;
    logBatchMs: number;
    logBatchLines: number;
    /** How long a result's uploads and record writes are retried while the store is away. */
    storeRetryMs: number;
    /** The author and committer of a published branch. */
    gitAuthor: { name: string; email: string };
    /** The forge's REST API, for `publish: pr`. */
    forgeApiUrl: string;
    /** The push token, read when a branch is pushed (from the env or its file); never the agent's. */
    pushToken?: (() => string | undefined) | undefined;
  };
}

/** The store stayed away past the retry deadline: the message goes back, the attempt is not judged. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  readonly code = "STORE_UNAVAILABLE";
}

const nowIso = () => new Date().toISOString();

const stoppedWhilePreparing = () => new RetryableError("WORKER_STOPPING", "the job was stopped while its workspace was prepared");

/** The machine with every effect bound to one message of one job. */
export function provideJobMachine(deps: JobDeps, msg: JsMsg, job: JobRequest) {
  const { runs, publisher, workspaces, login, log } = deps;
  const adapter = login.adapter;
  const meta = jobMeta(job);
  const prepared = new Map<string, { ws: PreparedWorkspace; home: PrivateHome }>();
  const batcher = new LogBatcher(deps.nc, job.id, { intervalMs: deps.settings.logBatchMs, maxLines: deps.settings.logBatchLines });
  let attempt = 0;
  /** What this attempt's agent reported using, once it has run (on the record and its end event). */
  let attemptUsage: RunUsage | undefined;
  let startedAt = 0;
  /** The agent's run, until every process it started is gone (and, for a failed run, its home put away). */
  let agentRun: Promise<AgentResult> | undefined;
  /** The run's private home put away once its processes are gone: credentials back to the volume, home removed. */
  let homePutAway: Promise<void> | undefined;
  /** A follow-up's start and the session it continues, once planned (each attempt plans afresh). */
  let followUp: FollowUp | undefined;
  /** What the CLI's resume option takes, once a follow-up's session is restored. */
  let resumeWith: string | undefined;
  /** The session this attempt's agent left, read from its private home before that is removed. */
  let session: AgentSession | undefined;
  /** The checkout under way: a job stopped during it removes the directory once it ends. */
  let preparing: Promise<Workspace> | undefined;
  /** The record's "the agent has finished" fact for this attempt, once begun. */
  let finishNoted: Promise<void> | undefined;
  /** The record as this attempt last wrote it: the next write tries that revision first. */
  let known: StoredRun | undefined;
  /** Status events go out in order, each retried while the store is away. */
  let events: Promise<void> = Promise.resolve();

  /** Retries while the store is away; past the deadline the message goes back unjudged. */
  const store = async <T>(what: string, write: () => Promise<T>): Promise<T> => {
    try {
      return await persist(what, write, { deadlineMs: deps.settings.storeRetryMs, log: log.child({ jobId: job.id }) });
    } catch (err) {
      const e = err as { name?: string };
      if (e.name === "RunConflictError" || e.name === "PermanentError") throw err;
      throw new StoreUnavailableError(`could not store ${what} of job ${job.id}: ${(err as Error).message}`, { cause: err });
    }
  };

  /**
   * Writes the record only while this worker's attempt still owns it; `change` returns undefined
   * when there is nothing to write. A finishing write whose answer was lost (the server went away
   * after applying it) is found applied on the retry. While nobody else has written the record
   * since this attempt did, one compare-and-set on the known revision does; otherwise (a conflict)
   * it is read afresh.
   */
  const updateOwned = (change: (r: RunRecord) => RunRecord | undefined, finishing?: RunRecord["state"]) => {
    const guarded = (r: RunRecord) => {
      if (finishing && r.state === finishing && r.workerId === deps.workerId && r.attempts === attempt) return undefined;
      if (!ownedBy(r, deps.workerId, attempt)) {
        throw new RunConflictError(`run ${job.id} is no longer held by ${deps.workerId} attempt ${attempt}`);
      }
      const next = change(r);
      return next && attemptUsage && attempt > 0 ? withAttemptUsage(next, attempt, attemptUsage) : next;
    };
    return store("the run record", async (): Promise<StoredRun | undefined> => {
      const last = known;
      if (last && ownedBy(last.record, deps.workerId, attempt)) {
        const next = guarded(last.record);
        if (next === undefined) return last;
        try {
          known = { record: next, revision: await runs.replace(job.id, next, last.revision) };
          return known;
        } catch (err) {
          if (!(err instanceof RunConflictError)) throw err;
        }
      }
      const stored = await runs.update(job.id, guarded);
      if (stored) known = stored;
      return stored;
    });
  };

  /**
   * The agent's effect has happened: the record says so before anything is collected, so a worker
   * that takes the run over does not start the agent again (src/runs/claim.ts). Begun the moment
   * the agent reports its turn done, and at the latest when the machine asks (recordExit).
   */
  const noteFinished = (): Promise<void> => {
    if (!finishNoted) {
      finishNoted = updateOwned((r) => (r.agentFinishedAt === undefined ? agentFinished(r, nowIso()) : undefined)).then(() => undefined);
      // Awaited by recordExit; a run that ends otherwise (stopped, failed) overwrites or drops the fact.
      finishNoted.catch(() => undefined);
    }
    return finishNoted;
  };

  const putArtifact = async (name: ArtifactName, data: string): Promise<string> => {
    const key = artifactKey(job.id, name);
    const bytes = new TextEncoder().encode(data);
    await store(key, () => deps.artifacts.putBlob({ name: key }, bytes));
    return key;
  };

  const saveOutput = async (): Promise<string[]> => {
    batcher.flush();
    const text = batcher.text();
    return text.length === 0 ? [] : [await putArtifact(ARTIFACTS.outputLog, text)];
  };

  /**
   * A finished run whose message came back: a worker killed between the record write and the
   * event leaves no terminal event, and `submit --wait` would wait forever. Say it now, once.
   */
  const announceEnd = async (r: RunRecord) => {
    if (!TERMINAL_RUN_STATES.includes(r.state)) return;
    const type = r.state === "succeeded" ? "succeeded" : r.state === "cancelled" ? "cancelled" : "failed";
    const jsm = await jetstreamManager(deps.nc);
    const said = await jsm.streams.getMessage(STREAMS.status, { last_by_subj: jobEventSubject(job.id, type) }).catch(() => null);
    if (said) return;
    const workerId = r.workerId ?? deps.workerId;
    const body =
      type === "succeeded"
        ? { type, workerId, attempt: r.attempts, outcome: r.result?.outcome ?? "NO_CHANGES", summary: r.result?.summary, artifacts: r.artifacts, durationMs: r.result?.durationMs ?? 0 }
        : type === "cancelled"
          ? { type, workerId, reason: r.lastError?.message ?? "cancelled" }
          : { type, workerId, attempt: r.attempts, state: r.state, error: r.lastError ?? { code: "FAILED", message: "the run failed" } };
    await publisher.job(job.id, body as Parameters<StatusPublisher["job"]>[1], meta);
  };

  const deadLetter = (reason: string, original: unknown) =>
    store("the DEAD copy", () => publisher.dead({ jobId: job.id, stage: "worker", reason, subject: msg.subject, original: redact(original) }));

  return jobMachine.provide({
    actors: {
      claim: fromPromise(async () => {
        const claim = await claimRun({ ...deps, msg, job, deadLetter, announceEnd });
        if (claim.stored) known = claim.stored;
        if ("attempt" in claim.result) attempt = claim.result.attempt;
        return claim.result;
      }),

      preflight: fromPromise(async () => {
        const result = await login.preflight();
        const stored = await updateOwned((r) => ({
          ...r,
          preflight: result,
          diagnostics: { ...r.diagnostics, volumeName: login.volume.name, volumePath: login.volume.path },
          updatedAt: nowIso(),
        }));
        // The run's queue and volume facts, for operators following the worker.
        const detail = { jobId: job.id, ...stored?.record.diagnostics, preflight: result };
        publisher
          .worker(deps.workerId, { type: "diagnostics", detail })
          .catch((err: unknown) => log.warn({ err, jobId: job.id }, "diagnostics event not published"));
        return result;
      }),

      prepareWorkspace: fromPromise(({ signal }) => (preparing = prepareWorkspace(signal))),

      runAgent: fromPromise(({ input, signal }) => (agentRun = runAgent(input.workspace.dir, signal))),

      agentExited: fromPromise(async () => {
        await agentRun?.catch(() => undefined);
        await homePutAway;
      }),

      recordExit: fromPromise(() => noteFinished()),

      collectArtifacts: fromPromise(async ({ input }): Promise<Collected> => {
        const { ws } = prepared.get(input.workspace.dir)!;
        const message = input.agent.lastMessage ? redactText(input.agent.lastMessage).trim() : undefined;
        // Side by side: the diff (then its upload), the output, the last message, and the agent's
        // home put away — its credentials are back on the volume before the record says succeeded.
        const steps = [
          workspaces.diff(ws).then(async (patch) => ({ patch, keys: patch.length > 0 ? [await putArtifact(ARTIFACTS.changesPatch, patch)] : [] })),
          saveOutput(),
          message ? putArtifact(ARTIFACTS.lastMessage, `${message}\n`).then((key) => [key]) : Promise.resolve([]),
          session ? putArtifact(ARTIFACTS.session, JSON.stringify(session)).then((key) => [key]) : Promise.resolve([]),
          homePutAway ?? Promise.resolve(),
        ] as const;
        // Every step settles before the machine moves on; the first failure is the answer.
        for (const step of await Promise.allSettled(steps)) if (step.status === "rejected") throw step.reason;
        const [{ patch, keys: patchKeys }, outputKeys, messageKeys, sessionKeys] = await Promise.all(steps);
        const keys = [...outputKeys, ...patchKeys, ...messageKeys, ...sessionKeys];
        const summary = message ? message.slice(0, 500) : undefined;
        const mode = job.task.publish?.mode;
        if (patch.length > 0 && (mode === "branch" || mode === "pr")) {
          // The worker commits and pushes what the patch holds; a push or API call that fails fails the run, its patch kept.
          const published = await publishResult(job, ws, mode, summary, { workspaces, ...deps.settings });
          return { outcome: mode === "branch" ? "PUBLISHED_BRANCH" : "PUBLISHED_PR", artifacts: keys, summary, published };
        }
        return { outcome: patch.length > 0 ? "CHANGES_READY" : "NO_CHANGES", artifacts: keys, summary };
      }),

      complete: fromPromise(async ({ input }) => {
        await updateOwned(
          (r) =>
            finished(
              r,
              nowIso(),
              "succeeded",
              { outcome: input.collected.outcome, summary: input.collected.summary, durationMs: Date.now() - startedAt, published: input.collected.published },
              input.collected.artifacts,
            ),
          "succeeded",
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
        const stored = await updateOwned((r) => finished(r, nowIso(), input.state, { outcome, error: input.error }, keys), input.state);
        // No record at all: the DEAD copy is what remains of the job.
        if (input.state === "dead_letter" || stored === undefined) {
          await deadLetter(`${input.error.code}: ${input.error.message}`, job);
        }
      }),

      cleanup: fromPromise(async ({ input }) => {
        batcher.flush();
        // A checkout the job was stopped during removes its own directory as it ends: wait for it,
        // and for the agent's credentials to be back, before the message is settled.
        await preparing?.catch(() => undefined);
        await homePutAway;
        if (input.workspace) {
          const { dir } = input.workspace;
          prepared.delete(dir);
          // In the background: the run's home is put away already, and the slot serves the next job meanwhile.
          workspaces.removeLater(dir, (err) => log.error({ err, jobId: job.id, dir }, "could not remove a workspace"));
        }
        await events;
      }),
    },
    actions: {
      report: (_, params: JobReport) => report(params),
    },
  });

  /**
   * The job's directory and the run's private home in it. Every way out but success — the run
   * taken over meanwhile (a conflict on the record), the job stopped, a step failing — removes
   * what it made: the machine only removes a workspace it was given.
   */
  async function prepareWorkspace(signal: AbortSignal): Promise<Workspace> {
    // Store reads, retried while the store is away like every other (past the deadline the message goes back unjudged).
    followUp = await store("the run this job continues", () => planFollowUp(job, { runs, artifacts: deps.artifacts, adapter, author: deps.settings.gitAuthor }, signal));
    const ws = await workspaces.prepare(job, signal, followUp?.start);
    try {
      // The run's private home lives in the job's directory and goes with it.
      const home = await adapter.prepareHome(login.volume, ws.dir);
      if (followUp?.session) resumeWith = await adapter.sessions!.restore(home.dir, followUp.session, ws.repoDir);
      if (deps.agentUser) await chownTree(ws.dir, deps.agentUser);
      if (signal.aborted) throw stoppedWhilePreparing();
      startedAt = Date.now();
      const resumed = followUp?.note;
      await updateOwned((r) => ({ ...r, startedAt: nowIso(), updatedAt: nowIso(), baseCommit: ws.baseCommit, ...(resumed ? { resumed } : {}) }));
      if (resumed) report({ type: "progress", message: followUpLine(resumed, adapter.runtime) });
      // Stopped while the record was written: the machine has moved on without this workspace.
      if (signal.aborted) throw stoppedWhilePreparing();
      prepared.set(ws.dir, { ws, home });
      return { dir: ws.dir, baseCommit: ws.baseCommit };
    } catch (err) {
      await workspaces.remove(ws.dir).catch((e: unknown) => log.error({ err: e, jobId: job.id, dir: ws.dir }, "could not remove a workspace"));
      throw err;
    }
  }

  /** The run's private home once its processes are gone: rotated credentials back to the volume, then removed. */
  async function putHomeAway(home: PrivateHome): Promise<void> {
    const writeBack = await home.writeBack().catch((err: unknown) => {
      log.warn({ err, jobId: job.id }, "could not write rotated credentials back to the volume");
      return "failed";
    });
    if (writeBack !== "unchanged") log.info({ jobId: job.id, volume: login.volume.name, writeBack }, "credentials write-back");
    // Credentials never outlive the run, even where workspaces are kept.
    const removal = deps.agentUser ? removeAgentTree(home.dir) : rm(home.dir, { recursive: true, force: true, maxRetries: 3 });
    await removal.catch((err: unknown) =>
      log.error({ err, jobId: job.id, dir: home.dir }, "could not remove the run's private home"),
    );
  }

  /**
   * The agent CLI from start to the end of every process it started. Its home is put away from
   * then on; a run that failed waits for that, a successful one leaves it to collecting.
   */
  async function runAgent(dir: string, signal: AbortSignal): Promise<AgentResult> {
    const { ws, home } = prepared.get(dir)!;
    const resume = resumeWith === undefined ? undefined : { session: resumeWith };
    const inv = { ...adapter.invocation(job, ws, home, resume), ...(deps.agentUser ? { user: deps.agentUser } : {}) };
    let sessionId: string | undefined;
    const parse = adapter.createParser();
    let lastMessage: string | undefined;
    let verdict: Extract<OutputEvent, { kind: "result" }> | undefined;
    const errors: string[] = [];
    /** The first answer that shows the plan's usage limit, preferring one that says when it resets. */
    let limit: UsageLimit | undefined;
    const result = await runProcess(inv, {
      signal,
      sandbox: deps.sandbox
        ? { jobDir: ws.dir, writable: [ws.repoDir, ws.outDir, home.dir], hide: deps.sandbox.hide, bwrap: deps.sandbox.bwrap }
        : undefined,
      // The machine's own timer stops the job first; this bound only guards against a stuck kill.
      timeoutMs: deps.settings.jobTimeoutMs + deps.settings.killGraceMs + 5_000,
      killGraceMs: deps.settings.killGraceMs,
      onLine: (line, stream) => {
        batcher.push(stream === "stderr" ? `[stderr] ${line}` : line);
        for (const ev of parse(line)) {
          if (ev.kind === "message") lastMessage = ev.text;
          else if (ev.kind === "error") errors.push(ev.text);
          else if (ev.kind === "usage") attemptUsage = addUsage(attemptUsage, ev.usage, job.task.runtime?.model);
          else if (ev.kind === "session") sessionId = SESSION_ID.test(ev.id) ? ev.id : undefined;
          else if (ev.kind === "result") {
            verdict = ev;
            // The agent says its turn is done: its effect has happened, whenever its process exits.
            if (ev.ok && !signal.aborted) void noteFinished().catch(() => undefined);
          }
          else report({ type: "progress", message: redactText(ev.text.slice(0, 500)) });
        }
        if (stream === "stderr" && adapter.loginExpired(line)) errors.push(line);
        if (!limit?.resetsAt) limit = adapter.usageLimit(line, new Date()) ?? limit;
      },
    });
    batcher.flush();
    if (result.survivors?.length) log.error({ jobId: job.id, survivors: result.survivors }, "agent processes that would not die");
    // A CLI that did not find the session it was given may start a new one without a word (codex does, exit 0).
    if (followUp?.session && resume && sessionId !== undefined && sessionId !== followUp.session.id) {
      report({ type: "progress", message: redactText(`${adapter.runtime} started session ${sessionId} instead of continuing ${followUp.session.id}`) });
    }
    // The conversation, for a follow-up, read before the home goes (only a run that may succeed keeps it).
    if (adapter.sessions && sessionId && result.exitCode === 0 && !result.cancelled) {
      session = await keptSession(adapter.sessions, { home, id: sessionId, cwd: ws.repoDir, env: inv.env }, log.child({ jobId: job.id }));
    }
    const putAway = (homePutAway = putHomeAway(home));
    if (inv.lastMessageFile) {
      // The out dir is the agent's: read without following a link, a regular file of at most 1 MiB.
      const file = await readAgentFile(dirname(inv.lastMessageFile), basename(inv.lastMessageFile), 1024 * 1024);
      const fromFile = file.kind === "file" ? file.data.toString("utf8").trim() : "";
      if (fromFile) lastMessage = fromFile;
    }
    if (result.spawnError) {
      await putAway;
      throw new RetryableError("AGENT_UNAVAILABLE", `${adapter.runtime} CLI could not start: ${result.spawnError.message}`);
    }
    const ok =
      result.exitCode === 0 &&
      !result.cancelled &&
      verdict?.ok !== false &&
      (!adapter.requiresResult || verdict?.ok === true);
    if (ok) return { exitCode: 0, lastMessage };
    await putAway;
    const evidence = errors.join("\n");
    const authExpired = adapter.loginExpired(evidence);
    if (authExpired) login.loginExpired(redactText(errors.find((e) => adapter.loginExpired(e)) ?? evidence));
    else if (limit) {
      // The login is spent, not broken, and the job did nothing wrong: it goes back unspent and
      // the login waits for its reset (the auth machine's `limited`), pausing its shards.
      const until = login.usageLimited({ ...limit, evidence: redactText(limit.evidence) });
      return {
        exitCode: result.exitCode === 0 ? 1 : result.exitCode,
        lastMessage,
        usageLimited: true,
        error: { code: "USAGE_LIMIT", message: `${adapter.runtime} hit its plan's usage limit on volume ${login.volume.name} until ${until}: ${redactText(limit.evidence)}` },
      };
    }
    const why =
      errors.at(-1) ??
      (result.exitCode === 0 ? `${adapter.runtime} ended without finishing its turn` : `${adapter.runtime} exited with code ${result.exitCode}`);
    return {
      exitCode: result.exitCode === 0 ? 1 : result.exitCode,
      lastMessage,
      authExpired,
      error: { code: authExpired ? "AUTH_EXPIRED" : "AGENT_FAILED", message: redactText(why.slice(0, 2_000)) },
    };
  }

  function report(r: JobReport | { type: "progress"; message: string }): void {
    const used = attemptUsage && (r.type === "succeeded" || r.type === "failed") ? { usage: attemptUsage } : {};
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
    events = events
      .then(() => store(`the ${r.type} event`, () => publisher.job(job.id, { ...body, ...used } as typeof body, meta)))
      .then(
        () => undefined,
        (err: unknown) => log.warn({ err, jobId: job.id, event: r.type }, "status event not published"),
      );
  }
}

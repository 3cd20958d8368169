/**
 * A follow-up job (`task.resume: {runId}`): where its checkout starts — the earlier run's result —
 * and the agent session it continues, when the earlier run's CLI is this one and left its session.
 */
import type { ObjectStore } from "@nats-io/obj";
import { PermanentError } from "../../src/errors.js";
import type { RunStore } from "../../src/runs/store.js";
import type { Logger } from "../../src/logger.js";
import { parseSession, type AgentSession, type SessionSupport } from "../../src/runtimes/session.js";
import type { PrivateHome, RuntimeAdapter } from "../../src/runtimes/types.js";
import { readAgentFile } from "../../src/runtimes/agent-files.js";
import { isSecretKey } from "../../src/secrets.js";
import { basename, dirname } from "node:path";
import type { JobRequest } from "../../src/schemas/job.js";
import type { RunRecord } from "../../src/schemas/run.js";
import { ARTIFACTS, artifactKey } from "../../src/subjects.js";
import type { WorkspaceStart } from "../../src/workspace/git.js";

/** A chain of follow-ups whose results are patches is rebuilt patch by patch; past this it is refused. */
const MAX_CHAIN = 20;

/** What a follow-up's record says of where it started and whether the agent's session went on. */
export type FollowUpNote = NonNullable<RunRecord["resumed"]>;

export interface FollowUp {
  start: WorkspaceStart;
  /** The earlier session to continue, when there is one this CLI can continue. */
  session?: AgentSession | undefined;
  note: FollowUpNote;
}

const failed = (message: string) => new PermanentError("RESUME_FAILED", message);

/**
 * Where the follow-up starts and what it continues, read from the store: a store error is thrown
 * as it is (the caller retries those), anything that can never succeed as RESUME_FAILED.
 */
export async function planFollowUp(
  job: JobRequest,
  deps: { runs: RunStore; artifacts: ObjectStore; adapter: RuntimeAdapter; author: { name: string; email: string } },
  signal?: AbortSignal,
): Promise<FollowUp | undefined> {
  const runId = job.task.resume?.runId;
  if (runId === undefined) return undefined;
  const readBlob = async (key: string) => {
    signal?.throwIfAborted();
    const bytes = await deps.artifacts.getBlob(key);
    return bytes === null ? undefined : new TextDecoder().decode(bytes);
  };
  const readRun = async (id: string) => {
    signal?.throwIfAborted();
    const stored = await deps.runs.lookup(id);
    if (stored === null) throw failed(`the record of run ${id}, which this job continues, does not parse`);
    return stored;
  };

  const resultOf = async (id: string, depth: number): Promise<{ record: RunRecord; root: "branch" | "commit"; start: Omit<WorkspaceStart, "author"> }> => {
    if (depth > MAX_CHAIN) throw failed(`run ${runId} continues a chain of more than ${MAX_CHAIN} follow-ups without a published branch; publish one (task.publish) and continue from it`);
    const stored = await readRun(id);
    if (!stored) throw failed(`run ${id}, which this job continues, has no record any more`);
    const r = stored.record;
    if (r.state !== "succeeded") throw failed(`run ${id}, which this job continues, is ${r.state} now; a follow-up starts only from a succeeded run's result`);
    const published = r.result?.published;
    if (published) {
      return { record: r, root: "branch", start: { ref: published.commit, what: `commit ${published.commit.slice(0, 12)} (branch ${published.branch}) published by run ${id}`, changes: [] } };
    }
    const previous = r.request.task.resume?.runId;
    // A record from before `baseCommit` was kept: its starting branch as it is now (its patch may no longer apply).
    const base = previous
      ? await resultOf(previous, depth + 1)
      : {
          root: "commit" as const,
          start: r.baseCommit
            ? { ref: r.baseCommit, what: `commit ${r.baseCommit.slice(0, 12)}, where run ${id} started`, changes: [] }
            : { ref: r.request.task.git?.startingBranch ?? "HEAD", what: `${r.request.task.git?.startingBranch ?? "the default branch"} as it is now (run ${id} kept no starting commit)`, changes: [] },
        };
    if (r.result?.outcome !== "CHANGES_READY") return { record: r, root: base.root, start: base.start };
    const patch = await readBlob(artifactKey(id, ARTIFACTS.changesPatch));
    if (patch === undefined) throw failed(`run ${id}, which this job continues, has no ${ARTIFACTS.changesPatch} any more`);
    const message = `Changes of run ${id}\n\nMoonMind-Job: ${id}\n`;
    return { record: r, root: base.root, start: { ...base.start, changes: [...base.start.changes, { patch, message }] } };
  };

  const { record, root, start } = await resultOf(runId, 0);
  const from: FollowUpNote["from"] = start.changes.length > 0 ? "patch" : root === "branch" ? "branch" : "start";
  const note = (session: FollowUpNote["session"], sessionId?: string): FollowUpNote => ({ runId, from, session, ...(sessionId ? { sessionId } : {}) });
  const plan = (session: FollowUpNote["session"], saved?: AgentSession): FollowUp => ({ start: { ...start, author: deps.author }, session: saved, note: note(session, saved?.id) });

  if (record.runtime !== deps.adapter.runtime) return plan("other-runtime");
  if (!deps.adapter.sessions) return plan("unsupported");
  const text = await readBlob(artifactKey(runId, ARTIFACTS.session));
  const saved = text === undefined ? undefined : parseSession(text);
  if (!saved) return plan("not-saved");
  return plan("continued", saved);
}

/** The sentence a follow-up's progress event says as it starts. */
export function followUpLine(note: FollowUpNote, runtime: string): string {
  const from = { branch: "its published branch", patch: "its changes", start: "where it started (it changed nothing)" }[note.from];
  const session = {
    continued: `${runtime} continues its session ${note.sessionId ?? ""}`.trimEnd(),
    unsupported: `${runtime} cannot continue a session: the agent starts afresh on the result`,
    "not-saved": "it left no session to continue: the agent starts afresh on the result",
    "other-runtime": `it ran on another runtime: ${runtime} starts afresh on the result`,
  }[note.session];
  return `continuing run ${note.runId} from ${from}; ${session}`;
}

/**
 * The session a run's CLI left in its private home, to keep as the run's `session.json`: undefined
 * when it wrote none, or when its files hold the value of a key or token the CLI was given (a
 * session is the conversation, never the login).
 */
export async function keptSession(
  sessions: SessionSupport,
  at: { home: PrivateHome; id: string; cwd: string; env: Record<string, string> },
  log: Logger,
): Promise<AgentSession | undefined> {
  const session = await sessions.collect(at.home.dir, at.id, at.cwd).catch((err: unknown) => {
    log.warn({ err }, "could not keep the agent's session");
    return undefined;
  });
  if (!session) return undefined;
  const secrets = [
    ...Object.entries(at.env)
      .filter(([name, value]) => isSecretKey(name) && value.length >= 8)
      .map(([, value]) => value),
    ...(await credentialValues(at.home)),
  ];
  const holdsSecret = session.files.some((f) => {
    const text = Buffer.from(f.base64, "base64").toString("utf8");
    return secrets.some((secret) => text.includes(secret));
  });
  if (!holdsSecret) return session;
  log.warn("the agent's session holds a credential of its login; not kept (a follow-up starts afresh)");
  return undefined;
}

/** The secret-named string values of the login's credentials file as the home holds it now (rotated ones included). */
async function credentialValues(home: PrivateHome): Promise<string[]> {
  if (!home.credentialFile) return [];
  const file = await readAgentFile(dirname(home.credentialFile), basename(home.credentialFile), 1024 * 1024);
  if (file.kind !== "file") return [];
  const values: string[] = [];
  const visit = (v: unknown, name: string): void => {
    if (typeof v === "string") {
      if (isSecretKey(name) && v.length >= 8) values.push(v);
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) visit(child, k);
    }
  };
  try {
    visit(JSON.parse(file.data.toString("utf8")), "");
  } catch {
    // not JSON: nothing to look for beyond the environment
  }
  return values;
}

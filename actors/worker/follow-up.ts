/**
 * A follow-up job (`task.resume: {runId}`): where its checkout starts — the earlier run's result —
 * and the agent session it continues, when the earlier run's CLI is this one and left its session.
 */
import type { ObjectStore } from "@nats-io/obj";
import { PermanentError } from "../../src/errors.js";
import type { RunStore } from "../../src/runs/store.js";
import type { Logger } from "../../src/logger.js";
import { parseSession, type AgentSession, type SessionSupport } from "../../src/runtimes/session.js";
import type { RuntimeAdapter } from "../../src/runtimes/types.js";
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

export async function planFollowUp(
  job: JobRequest,
  deps: { runs: RunStore; artifacts: ObjectStore; adapter: RuntimeAdapter; author: { name: string; email: string } },
): Promise<FollowUp | undefined> {
  const runId = job.task.resume?.runId;
  if (runId === undefined) return undefined;
  const readBlob = async (key: string) => {
    const bytes = await deps.artifacts.getBlob(key);
    return bytes === null ? undefined : new TextDecoder().decode(bytes);
  };

  const resultOf = async (id: string, depth: number): Promise<{ record: RunRecord; start: Omit<WorkspaceStart, "author"> }> => {
    if (depth > MAX_CHAIN) throw failed(`run ${runId} continues a chain of more than ${MAX_CHAIN} follow-ups without a published branch; publish one (task.publish) and continue from it`);
    const stored = await deps.runs.get(id);
    if (!stored) throw failed(`run ${id}, which this job continues, has no record any more`);
    const r = stored.record;
    if (r.state !== "succeeded") throw failed(`run ${id}, which this job continues, is ${r.state} now; a follow-up starts only from a succeeded run's result`);
    const published = r.result?.published;
    if (published) {
      return { record: r, start: { ref: published.commit, what: `commit ${published.commit.slice(0, 12)} (branch ${published.branch}) published by run ${id}`, changes: [] } };
    }
    const previous = r.request.task.resume?.runId;
    const base = previous
      ? (await resultOf(previous, depth + 1)).start
      : r.baseCommit
        ? { ref: r.baseCommit, what: `commit ${r.baseCommit.slice(0, 12)}, where run ${id} started`, changes: [] }
        : { ref: r.request.task.git?.startingBranch ?? "HEAD", what: `${r.request.task.git?.startingBranch ?? "the default branch"}, where run ${id} started`, changes: [] };
    if (r.result?.outcome !== "CHANGES_READY") return { record: r, start: base };
    const patch = await readBlob(artifactKey(id, ARTIFACTS.changesPatch));
    if (patch === undefined) throw failed(`run ${id}, which this job continues, has no ${ARTIFACTS.changesPatch} any more`);
    const message = `Changes of run ${id}\n\nMoonMind-Job: ${id}\n`;
    return { record: r, start: { ...base, changes: [...base.changes, { patch, message }] } };
  };

  const { record, start } = await resultOf(runId, 0);
  const from: FollowUpNote["from"] = record.result?.published ? "branch" : start.changes.length > 0 ? "patch" : "start";
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
  at: { homeDir: string; id: string; cwd: string; env: Record<string, string> },
  log: Logger,
): Promise<AgentSession | undefined> {
  const session = await sessions.collect(at.homeDir, at.id, at.cwd).catch((err: unknown) => {
    log.warn({ err }, "could not keep the agent's session");
    return undefined;
  });
  if (!session) return undefined;
  const secrets = Object.entries(at.env)
    .filter(([name, value]) => /KEY|TOKEN|SECRET|PASSWORD/i.test(name) && value.length >= 8)
    .map(([, value]) => value);
  const holdsSecret = session.files.some((f) => {
    const text = Buffer.from(f.base64, "base64").toString("utf8");
    return secrets.some((secret) => text.includes(secret));
  });
  if (!holdsSecret) return session;
  log.warn("the agent's session holds a credential of its login; not kept (a follow-up starts afresh)");
  return undefined;
}

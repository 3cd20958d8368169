/** `ops.dead.list` and `ops.dead.replay`: the DEAD stream, newest first, and re-submitting a letter. */
import { parseJson } from "../json.js";
import { DeadLetterSchema } from "../schemas/events.js";
import type { DeadEntry, DeadListReply, DeadListRequestSchema, DeadReplayReply, DeadReplayRequest } from "../schemas/ops.js";
import { STREAMS, SUBJECTS, deadSubject } from "../subjects.js";
import type { z } from "zod";
import type { OpsContext } from "./context.js";
import { conflict, notFound } from "./errors.js";

function toEntry(m: { seq: number; data: Uint8Array }): DeadEntry | undefined {
  const letter = DeadLetterSchema.safeParse(parseJson(m.data));
  return letter.success ? { seq: m.seq, letter: letter.data } : undefined;
}

export async function listDead(ctx: OpsContext, req: z.output<typeof DeadListRequestSchema>): Promise<DeadListReply> {
  const info = await ctx.jsm.streams.info(STREAMS.dead);
  const letters: DeadEntry[] = [];
  // Walk back from the newest; gaps (deleted or aged-out messages) are skipped.
  for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0 && letters.length < req.limit; seq--) {
    const m = await ctx.jsm.streams.getMessage(STREAMS.dead, { seq }).catch(() => null);
    const entry = m ? toEntry(m) : undefined;
    if (entry) letters.push(entry);
  }
  return { letters, total: info.state.messages };
}

export async function replayDead(ctx: OpsContext, req: DeadReplayRequest): Promise<DeadReplayReply> {
  const m =
    req.seq !== undefined
      ? await ctx.jsm.streams.getMessage(STREAMS.dead, { seq: req.seq }).catch(() => null)
      : await ctx.jsm.streams.getMessage(STREAMS.dead, { last_by_subj: deadSubject(req.jobId!) });
  const entry = m ? toEntry(m) : undefined;
  if (!entry) {
    throw notFound(req.seq !== undefined ? `no dead letter at DEAD sequence ${req.seq}: see 'moonmind dead ls' (ops.dead.list)` : `no dead letter for job ${req.jobId}: see 'moonmind dead ls' (ops.dead.list)`);
  }
  const { letter } = entry;
  if (letter.truncated) throw conflict(`dead letter ${entry.seq} (job ${letter.jobId}) holds only a truncated copy of the original; it cannot be replayed — submit the job again`);
  let original = letter.original;
  if (typeof original === "string") original = parseJson(original);
  if (original === null || typeof original !== "object" || Array.isArray(original)) {
    throw conflict(`dead letter ${entry.seq} (job ${letter.jobId}) does not hold a JSON object (the original was not JSON); it cannot be replayed — submit the job again`);
  }
  const newJobId = await freeReplayId(ctx, letter.jobId);
  const body = original as Record<string, unknown>;
  const metadata = body.metadata !== null && typeof body.metadata === "object" && !Array.isArray(body.metadata) ? (body.metadata as Record<string, unknown>) : {};
  const submission = { ...body, id: newJobId, metadata: { ...metadata, replayOf: { jobId: letter.jobId, deadSeq: entry.seq } } };
  // Through intake again: the replay is judged and routed like any submission.
  await ctx.js.publish(SUBJECTS.submit, JSON.stringify(submission), { msgID: `submit-${newJobId}` });
  return { letter: entry, newJobId };
}

/** `<id>-replay-<n>` with the first n that names no run yet (an id stays a valid subject token). */
async function freeReplayId(ctx: OpsContext, jobId: string): Promise<string> {
  const stem = jobId.replace(/-replay-\d+$/, "").slice(0, 110);
  for (let n = 1; n < 1_000; n++) {
    const id = `${stem}-replay-${n}`;
    if (!(await ctx.runsKv.get(id))) return id;
  }
  throw conflict(`job ${jobId} was replayed 999 times already`);
}

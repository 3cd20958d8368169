/**
 * `moonmind artifacts <id> [patch|log|message|session] [--out FILE]`: what a job stored in the object
 * store `artifacts`. Without a kind, the list; with one, its content to stdout or to FILE. An
 * artifact that is not there is explained from the run record (KV runs): its state and outcome.
 */
import { writeFile } from "node:fs/promises";
import { Objm } from "@nats-io/obj";
import { MoonmindError, UsageError } from "../../errors.js";
import { ARTIFACTS, OBJECT_STORES, artifactKey, type ArtifactName } from "../../subjects.js";
import type { RunRecord } from "../../schemas/run.js";
import { parseJobId, readRunRecord, withNats, type CliContext } from "../context.js";
import { renderTable, shortTime } from "../table.js";

export const ARTIFACT_KINDS = { patch: ARTIFACTS.changesPatch, log: ARTIFACTS.outputLog, message: ARTIFACTS.lastMessage, session: ARTIFACTS.session } as const;
export type ArtifactKind = keyof typeof ARTIFACT_KINDS;

export interface ArtifactsOptions {
  out?: string;
  json?: boolean;
}

export interface ArtifactEntry {
  kind: ArtifactKind;
  name: ArtifactName;
  key: string;
  size: number;
  mtime: string;
  digest?: string;
}

export async function artifactsCommand(ctx: CliContext, rawId: string, kind: string | undefined, opts: ArtifactsOptions): Promise<number> {
  const jobId = parseJobId(rawId);
  if (kind !== undefined && !(kind in ARTIFACT_KINDS)) {
    throw new UsageError(`unknown artifact '${kind}': use patch (${ARTIFACTS.changesPatch}), log (${ARTIFACTS.outputLog}), message (${ARTIFACTS.lastMessage}) or session (${ARTIFACTS.session})`);
  }
  if (opts.out !== undefined && kind === undefined) throw new UsageError("--out needs an artifact: patch, log, message or session");
  return withNats(ctx, async (nc) => {
    const store = await new Objm(nc).open(OBJECT_STORES.artifacts);
    const present: ArtifactEntry[] = [];
    for (const [k, name] of Object.entries(ARTIFACT_KINDS) as Array<[ArtifactKind, ArtifactName]>) {
      const info = await store.info(artifactKey(jobId, name));
      if (info && !info.deleted) {
        present.push({ kind: k, name, key: info.name, size: info.size, mtime: info.mtime, ...(info.digest ? { digest: info.digest } : {}) });
      }
    }

    if (kind === undefined) {
      if (present.length === 0) throw new MoonmindError(`job ${jobId} has no artifacts in object store ${OBJECT_STORES.artifacts}`, { remedy: "a job stores them when it ends; check the id and its state (moonmind runs get <id>)" });
      if (opts.json) ctx.out(JSON.stringify({ jobId, artifacts: present }));
      else ctx.out(renderTable(["KIND", "KEY", "SIZE", "STORED"], present.map((a) => [a.kind, a.key, formatBytes(a.size), shortTime(a.mtime)]), ctx.terminal.colors));
      return 0;
    }

    const wanted = ARTIFACT_KINDS[kind as ArtifactKind];
    const key = artifactKey(jobId, wanted);
    const data = present.some((a) => a.name === wanted) ? await store.getBlob(key) : null;
    if (!data) {
      const has = present.length === 0 ? "the job has no artifacts" : `it has: ${present.map((a) => `${a.kind} (${a.name})`).join(", ")}`;
      const why = whyMissing(kind as ArtifactKind, await readRunRecord(nc, jobId));
      throw new MoonmindError(`no ${wanted} for job ${jobId}${why ? ` — ${why}` : ""}; ${has}`);
    }
    if (opts.out !== undefined) {
      await writeFile(opts.out, data);
      if (opts.json) ctx.out(JSON.stringify({ jobId, kind, key, size: data.length, savedTo: opts.out }));
      else ctx.err(`saved ${key} (${formatBytes(data.length)}) to ${opts.out}`);
      return 0;
    }
    if (opts.json) ctx.out(JSON.stringify({ jobId, kind, key, size: data.length, content: new TextDecoder().decode(data) }));
    else process.stdout.write(data);
    return 0;
  });
}

/** Why a run has no such artifact, from its record: its state, outcome and last error. */
export function whyMissing(kind: ArtifactKind, record: RunRecord | undefined): string {
  if (!record) return "";
  const outcome = record.result?.outcome;
  const error = record.result?.error ?? record.lastError;
  const attempt = record.attempts > 0 ? ` after attempt ${record.attempts}` : "";
  const detail = `${outcome ? ` (outcome ${outcome})` : ""}${error ? `: ${error.code}: ${error.message}` : ""}`;
  switch (record.state) {
    case "succeeded":
      if (outcome === "NO_CHANGES" && kind === "patch") return "the agent changed nothing (outcome NO_CHANGES)";
      return outcome ? `the run succeeded (outcome ${outcome})` : "the run succeeded";
    case "cancelled":
      return `the run was cancelled${outcome ? ` (outcome ${outcome})` : ""}${record.result?.summary ? `: ${record.result.summary}` : error ? `: ${error.message}` : ""}`;
    case "dead_letter":
      return `the run was dead-lettered${attempt}${detail}`;
    case "failed":
      return `the run failed${attempt}${detail}`;
    case "queued":
    case "running":
      return `the run is ${record.state}${record.attempts > 0 ? ` (attempt ${record.attempts})` : ""}; a run stores its artifacts when it ends`;
  }
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * An agent CLI's session, kept past its run: the files the CLI wrote for one conversation in the
 * run's private home, saved as the run's `session.json` artifact and restored into a follow-up's
 * fresh private home, so the CLI continues that conversation (docs/runtimes.md, "Follow-ups").
 * Only the conversation's own files are kept — never a credential, never the rest of the home.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize } from "node:path";
import { z } from "zod";
import { readAgentFile } from "./agent-files.js";

/** Past this a session is not kept (a conversation of that size is no longer worth continuing). */
export const MAX_SESSION_BYTES = 32 * 1024 * 1024;

const SessionFileSchema = z.object({
  /** Relative to the private home, without `..`. */
  path: z.string().min(1).refine((p) => !isAbsolute(p) && !normalize(p).startsWith(".."), { message: "must stay inside the home" }),
  base64: z.string(),
});

/** What a session id may be: it goes on the CLI's command line. */
export const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

export const AgentSessionSchema = z.object({
  runtime: z.string(),
  /** The CLI's id for the conversation (what its resume option takes). */
  id: z.string().regex(SESSION_ID, "a session id is letters, digits and . _ : - (it goes on the CLI's command line)"),
  /** The checkout the conversation ran in: claude and gemini file sessions by it. */
  cwd: z.string(),
  files: z.array(SessionFileSchema).min(1).max(1_000),
});
export type AgentSession = z.infer<typeof AgentSessionSchema>;

/** A saved session, or undefined when the artifact is not one (a follow-up then starts afresh). */
export function parseSession(text: string): AgentSession | undefined {
  try {
    const parsed = AgentSessionSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** How one CLI keeps and continues a session. */
export interface SessionSupport {
  /** After a run: the files of session `id` in the private home, undefined when it wrote none. */
  collect(homeDir: string, id: string, cwd: string): Promise<AgentSession | undefined>;
  /**
   * Before a follow-up: the session's files into its fresh private home, for its checkout `cwd`;
   * returns what the CLI's resume option takes (an id, or the session file's path).
   */
  restore(homeDir: string, session: AgentSession, cwd: string): Promise<string>;
}

/**
 * Reads the files (relative paths) as the agent left them — regular files only, no link followed
 * (./agent-files.ts) — skipping those that are not there; undefined when none is, or they are too big.
 */
export async function readSessionFiles(homeDir: string, paths: string[]): Promise<AgentSession["files"] | undefined> {
  const files: AgentSession["files"] = [];
  let bytes = 0;
  for (const path of paths) {
    const file = await readAgentFile(homeDir, path, MAX_SESSION_BYTES - bytes);
    if (file.kind === "too-big") return undefined;
    if (file.kind === "missing") continue;
    bytes += file.data.byteLength;
    files.push({ path, base64: file.data.toString("base64") });
  }
  return files.length > 0 ? files : undefined;
}

/** Writes session files under the home, 0600 in 0700 directories, each at `rename(path)`. */
export async function writeSessionFiles(homeDir: string, files: AgentSession["files"], rename: (path: string) => string = (p) => p): Promise<void> {
  for (const file of files) {
    const target = join(homeDir, rename(file.path));
    if (!target.startsWith(`${homeDir}/`)) throw new Error(`a session file would land outside the home: ${file.path}`);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, Buffer.from(file.base64, "base64"), { mode: 0o600 });
  }
}

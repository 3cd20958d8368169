import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keptSession } from "../../actors/worker/follow-up.js";
import { createLogger } from "../../src/logger.js";
import type { AgentSession, SessionSupport } from "../../src/runtimes/session.js";
import type { PrivateHome } from "../../src/runtimes/types.js";

const log = createLogger({ actor: "test" }, "silent");
const KEY = ["sk", "ant", "loginkey0123456789"].join("-");
const REFRESH = ["rt", "rotatedrefreshtoken0123456789"].join("_");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kept-session-"));
  // The login's credentials file as the CLI left it in its home (a token rotated during the run).
  await writeFile(join(dir, "auth.json"), JSON.stringify({ tokens: { refresh_token: REFRESH, account_id: "acct-1" } }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function leaving(text: string | undefined): SessionSupport {
  return {
    collect: async (_home, id, cwd): Promise<AgentSession | undefined> =>
      text === undefined ? undefined : { runtime: "codex", id, cwd, files: [{ path: `sessions/rollout-${id}.jsonl`, base64: Buffer.from(text).toString("base64") }] },
    restore: async () => "unused",
  };
}

describe("the session a run keeps", () => {
  const at = () => {
    const home: PrivateHome = { dir, env: {}, credentialFile: join(dir, "auth.json"), writeBack: async () => "unchanged" };
    return { home, id: "s-1", cwd: "/run/repo", env: { ANTHROPIC_API_KEY: KEY, PATH: "/usr/bin" } };
  };

  it("is the conversation the CLI left", async () => {
    expect((await keptSession(leaving('{"type":"user","text":"fix it acct-1"}\n'), at(), log))?.id).toBe("s-1");
  });

  it("is none when the CLI left none, or when it holds a key the CLI was given or a token of its login's file", async () => {
    expect(await keptSession(leaving(undefined), at(), log)).toBeUndefined();
    expect(await keptSession(leaving(`{"type":"tool_result","text":"ANTHROPIC_API_KEY=${KEY}"}\n`), at(), log)).toBeUndefined();
    expect(await keptSession(leaving(`{"type":"tool_result","text":"cat auth.json: ${REFRESH}"}\n`), at(), log)).toBeUndefined();
  });
});

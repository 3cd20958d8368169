import { describe, expect, it } from "vitest";
import { keptSession } from "../../actors/worker/follow-up.js";
import { createLogger } from "../../src/logger.js";
import type { AgentSession, SessionSupport } from "../../src/runtimes/session.js";

const log = createLogger({ actor: "test" }, "silent");
const KEY = ["sk", "ant", "loginkey0123456789"].join("-");

function leaving(text: string | undefined): SessionSupport {
  return {
    collect: async (_home, id, cwd): Promise<AgentSession | undefined> =>
      text === undefined ? undefined : { runtime: "claude", id, cwd, files: [{ path: `projects/-r/${id}.jsonl`, base64: Buffer.from(text).toString("base64") }] },
    restore: async () => "unused",
  };
}

describe("the session a run keeps", () => {
  const at = { homeDir: "/run/home", id: "s-1", cwd: "/run/repo", env: { ANTHROPIC_API_KEY: KEY, PATH: "/usr/bin" } };

  it("is the conversation the CLI left", async () => {
    expect((await keptSession(leaving('{"type":"user","text":"fix it"}\n'), at, log))?.id).toBe("s-1");
  });

  it("is none when the CLI left none, or when it holds a key the CLI was given", async () => {
    expect(await keptSession(leaving(undefined), at, log)).toBeUndefined();
    expect(await keptSession(leaving(`{"type":"tool_result","text":"ANTHROPIC_API_KEY=${KEY}"}\n`), at, log)).toBeUndefined();
  });
});

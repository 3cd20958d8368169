import { describe, expect, it } from "vitest";
import { parseSubmission, type SubmissionOptions } from "../../src/submission.js";

const opts: SubmissionOptions = {
  maxPayloadBytes: 4_096,
  defaultRuntime: "codex",
  allowLocalRepos: false,
  newId: () => "generated-id",
};
const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const parse = (v: unknown, o: Partial<SubmissionOptions> = {}) => parseSubmission(enc(v), { ...opts, ...o });

function accepted(v: unknown, o: Partial<SubmissionOptions> = {}) {
  const r = parse(v, o);
  if (!r.ok) throw new Error(`expected acceptance, got: ${r.reason}`);
  return r.job;
}
function rejected(v: unknown, o: Partial<SubmissionOptions> = {}) {
  const r = parse(v, o);
  if (r.ok) throw new Error("expected a rejection");
  return r;
}

describe("parseSubmission: accepted forms", () => {
  it("normalizes the short form a person types with nats pub", () => {
    expect(accepted({ repository: "org/repo", instructions: "fix the flaky test" })).toEqual({
      id: "generated-id",
      type: "task",
      repository: "org/repo",
      targetRuntime: "codex",
      maxAttempts: 3,
      task: { instructions: "fix the flaky test", runtime: { mode: "codex" } },
    });
  });

  it("takes the runtime, ref and repo alias of the short form", () => {
    const job = accepted({ repo: "org/repo", instructions: "x", runtime: "claude", ref: "main" });
    expect(job).toMatchObject({
      repository: "org/repo",
      targetRuntime: "claude",
      task: { runtime: { mode: "claude" }, git: { startingBranch: "main" } },
    });
  });

  it("keeps the canonical form as given", () => {
    const canonical = {
      id: "abc-1",
      type: "task",
      repository: "https://github.com/org/repo.git",
      targetRuntime: "gemini",
      affinityKey: "team-a",
      priority: 5,
      maxAttempts: 2,
      task: {
        instructions: "do it",
        runtime: { mode: "gemini", model: "m", effort: "high" },
        git: { startingBranch: "dev", newBranch: "feature/x" },
        publish: { mode: "none" },
      },
      metadata: { stage: "discover" },
    };
    expect(accepted(canonical)).toEqual(canonical);
  });

  it.each([
    // task.runtime.mode › targetRuntime › runtime › default
    [{ task: { instructions: "x", runtime: { mode: "gemini" } }, targetRuntime: "claude" }, "gemini"],
    [{ task: { instructions: "x" }, targetRuntime: "claude", runtime: "gemini" }, "claude"],
    [{ instructions: "x", runtime: "gemini" }, "gemini"],
    [{ instructions: "x" }, "codex"],
  ])("applies the runtime precedence to %o → %s, and writes both fields back", (extra, runtime) => {
    const job = accepted({ repository: "org/repo", ...extra });
    expect(job.targetRuntime).toBe(runtime);
    expect(job.task.runtime?.mode).toBe(runtime);
  });

  it("uses MOONMIND_DEFAULT_TASK_RUNTIME when the job names no runtime", () => {
    expect(accepted({ repository: "org/repo", instructions: "x" }, { defaultRuntime: "claude" }).targetRuntime).toBe("claude");
  });

  it("accepts a skill instead of instructions", () => {
    expect(accepted({ repository: "org/repo", task: { skill: { id: "lint" } } }).task.skill).toEqual({ id: "lint" });
  });

  it("accepts local repositories only where allowed", () => {
    expect(accepted({ repository: "/srv/git/repo", instructions: "x" }, { allowLocalRepos: true }).repository).toBe("/srv/git/repo");
    expect(rejected({ repository: "/srv/git/repo", instructions: "x" }).reason).toMatch(/MOONMIND_ALLOW_LOCAL_REPOS=true/);
  });
});

describe("parseSubmission: rejections", () => {
  it.each([
    ["not JSON", "{repository: org/repo", /not valid JSON/],
    ["an array", [1, 2], /must be a JSON object/],
    ["a string", '"hello"', /must be a JSON object/],
    ["no repository", { instructions: "x" }, /repository is required/],
    ["no instructions", { repository: "org/repo" }, /instructions is required/],
    ["empty instructions", { repository: "org/repo", instructions: "   " }, /instructions is required/],
    ["an unknown runtime", { repository: "org/repo", instructions: "x", runtime: "cobol" }, /unknown runtime 'cobol'/],
    ["an unknown field", { repository: "org/repo", instructions: "x", priorty: 1 }, /unknown field 'priorty'/],
    ["a wrong type", { repository: "org/repo", instructions: 5 }, /instructions/],
    ["an option-like repository", { repository: "--upload-pack=touch /tmp/x", instructions: "x" }, /must not start with '-'/],
    ["a transport helper", { repository: "ext::sh -c touch% /tmp/pwned", instructions: "x" }, /whitespace|transport helpers/],
    ["credentials in the URL", { repository: "https://user:pw@github.com/org/repo", instructions: "x" }, /secret|credentials/],
    ["a user in an https URL", { repository: "https://someone@github.com/org/repo", instructions: "x" }, /must not embed credentials/],
    ["a bad id", { id: "a.b", repository: "org/repo", instructions: "x" }, /id/],
    ["maxAttempts out of range", { repository: "org/repo", instructions: "x", maxAttempts: 0 }, /maxAttempts/],
    ["an option-like ref", { repository: "org/repo", instructions: "x", ref: "--force" }, /git ref/],
    ["an unknown workflow stage", { repository: "org/repo", instructions: "x", metadata: { stage: "deploy" } }, /metadata.stage must be one of discover, submit, publish/],
  ])("rejects %s", (_name, input, reason) => {
    expect(rejected(input).reason).toMatch(reason);
  });

  it("rejects an oversized payload before parsing it, keeping a truncated copy", () => {
    const r = rejected({ repository: "org/repo", instructions: "x".repeat(10_000) });
    expect(r.reason).toMatch(/limit is 4096 \(MOONMIND_MAX_PAYLOAD_BYTES\)/);
    expect(r.truncated).toBe(true);
    expect(String(r.original).length).toBeLessThanOrEqual(4_096);
  });

  it("keeps the submitter's id on a rejection when it is usable", () => {
    expect(rejected({ id: "mine-1", repository: "org/repo" }).jobId).toBe("mine-1");
    expect(rejected('{"id":"mine-2", broken').jobId).toBe("mine-2");
    expect(rejected({ repository: "org/repo" }).jobId).toBe("generated-id");
  });
});

describe("parseSubmission: secrets", () => {
  const secretValue = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
  it.each([
    [{ repository: "org/repo", instructions: "x", metadata: { apiKey: "hunter2" } }, "metadata.apiKey"],
    [{ repository: "org/repo", instructions: "x", metadata: { github_token: "abc" } }, "metadata.github_token"],
    [{ repository: "org/repo", instructions: "x", task: { instructions: "y" }, metadata: { note: secretValue } }, "metadata.note"],
    [{ repository: "org/repo", instructions: `use ${secretValue}` }, "instructions"],
    [{ repository: "org/repo", instructions: "x", metadata: { list: ["ghp_abcdefghijklmnopqrstuvwxyz012345"] } }, "metadata.list[0]"],
    [{ repository: "org/repo", instructions: "x", metadata: { k: "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345" } }, "metadata.k"],
    [{ repository: "org/repo", instructions: "x", password: "p" }, "password"],
  ])("names the field and never echoes the value (%#)", (input, field) => {
    const r = rejected(input);
    expect(r.field).toBe(field);
    expect(r.reason).toContain(`'${field}'`);
    expect(r.reason).not.toContain("hunter2");
    expect(r.reason).not.toContain(secretValue);
    expect(JSON.stringify(r.original)).not.toMatch(/hunter2|sk-proj-|ghp_|AIza/);
  });

  it("does not flag ordinary words that merely contain a secret word", () => {
    expect(accepted({ repository: "org/repo", instructions: "raise maxTokens", metadata: { maxTokens: 5, tokenizer: "x" } })).toBeTruthy();
  });

  it("redacts secrets in a copy of a payload that is not JSON", () => {
    const r = rejected(`{"repository":"org/repo","token": "abc123", "note": "${secretValue}"`);
    expect(String(r.original)).not.toMatch(/abc123|sk-proj-/);
  });
});

describe("parseSubmission: any input", () => {
  it("answers every one of 5,000 random and mutated payloads with a result, never a throw", () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const base = JSON.stringify({ id: "f", repository: "org/repo", instructions: "x", task: { runtime: { mode: "codex" } } });
    const alphabet = '{}[]":,\\ abc-_./0123456789\u0000\u00ff\ud83d';
    for (let i = 0; i < 5_000; i++) {
      let text: string;
      if (i % 2 === 0) {
        text = Array.from({ length: Math.floor(rand() * 80) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
      } else {
        const chars = [...base];
        for (let k = 0; k < 3; k++) chars[Math.floor(rand() * chars.length)] = alphabet[Math.floor(rand() * alphabet.length)]!;
        text = chars.join("");
      }
      const r = parseSubmission(new TextEncoder().encode(text), opts);
      expect(typeof r.ok).toBe("boolean");
      if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
    }
  });
});

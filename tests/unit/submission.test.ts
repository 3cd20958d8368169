import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, parseSubmission, type SubmissionOptions } from "../../src/submission.js";

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
    ["an option-like ssh host", { repository: "ssh://-oProxyCommand=touch%20x/repo", instructions: "x" }, /starts with '-'/],
    ["an option-like ssh user's host", { repository: "ssh://git@-oProxyCommand=x/repo", instructions: "x" }, /starts with '-'/],
    ["an option-like https host", { repository: "https://-x/repo", instructions: "x" }, /starts with '-'/],
    ["an option-like scp path", { repository: "git@github.com:-x/repo", instructions: "x" }, /starts with '-'/],
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

describe("parseSubmission: only the top-level id is an id", () => {
  it("gives a job without an id a new one, never a skill's, step's or metadata's", () => {
    let n = 0;
    const o = { newId: () => `new-${++n}` };
    const a = accepted({ repository: "org/repo", task: { skill: { id: "lint" } } }, o);
    const b = accepted({ repository: "org/other", task: { skill: { id: "lint" } } }, o);
    expect(a.id).toBe("new-1");
    expect(b.id).toBe("new-2");
    expect(accepted({ repository: "org/repo", instructions: "x", task: { steps: [{ id: "s1" }] } }, o).id).toBe("new-3");
    expect(accepted({ metadata: { id: "m1" }, repository: "org/repo", instructions: "x" }, o).id).toBe("new-4");
  });

  it.each([
    ['{"task":{"skill":{"id":"lint"}}, broken', "a nested id in broken JSON"],
    ['{"metadata":{"id":"meta-1"}', "a nested id in truncated JSON"],
    ['{"a" "id":"x"}', "an id after a syntax error"],
    ['["id","x"]', "an id in an array"],
  ])("does not borrow %s (%s)", (text) => {
    expect(rejected(text).jobId).toBe("generated-id");
  });

  it("does not borrow a nested id from an oversized payload either", () => {
    const big = JSON.stringify({ task: { skill: { id: "lint" } }, repository: "org/repo", instructions: "x".repeat(10_000) });
    expect(rejected(big).jobId).toBe("generated-id");
    const mine = JSON.stringify({ id: "big-1", repository: "org/repo", instructions: "x".repeat(10_000) });
    expect(rejected(mine).jobId).toBe("big-1");
  });
});

describe("parseSubmission: poison input gets a verdict", () => {
  const nest = (open: string, close: string, depth: number) =>
    `{"repository":"org/repo","instructions":"x","metadata":{"a":${open.repeat(depth)}1${close.repeat(depth)}}}`;

  it.each([
    ["5,000-level objects", nest('{"a":', "}", 5_000)],
    ["20,000-level arrays", nest("[", "]", 20_000)],
    ["truncated 100,000-level arrays", "[".repeat(100_000)],
  ])("refuses %s before anything walks them, naming where", (_name, text) => {
    const r = rejected(text, { maxPayloadBytes: 1_000_000 });
    expect(r.reason).toMatch(new RegExp(`more than ${MAX_JSON_DEPTH} levels deep`));
    expect(r.truncated).toBe(true);
  });

  it("accepts nesting up to the limit", () => {
    const depth = MAX_JSON_DEPTH - 2; // the payload and metadata are two levels
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = { a: v };
    expect(accepted({ repository: "org/repo", instructions: "x", metadata: { a: v } }).metadata).toBeTruthy();
    expect(rejected({ repository: "org/repo", instructions: "x", metadata: { a: { a: v } } }).reason).toMatch(/levels deep/);
  });

  it.each([
    ['{"id":"a","id":"b","repository":"org/repo","instructions":"x"}', "id", "generated-id"],
    ['{"id":"a","repository":"org/repo","instructions":"x","task":{"instructions":"y","instructions":"z"}}', "task.instructions", "a"],
    ['{"__proto__":{"x":1},"__proto__":{"y":2},"repository":"org/repo","instructions":"x"}', "__proto__", "generated-id"],
    ['{"repository":"org/repo","instructions":"x","metadata":{"__proto__":{"stage":"deploy"}}}', "metadata.__proto__", "generated-id"],
    ['{"repository":"org/repo","instructions":"x","task":{"runtime":{"__proto__":{"mode":"gemini"}}}}', "task.runtime.__proto__", "generated-id"],
  ])("refuses duplicate and __proto__ keys: %s", (text, field, jobId) => {
    const r = rejected(text);
    expect(r.field).toBe(field);
    expect(r.reason).toContain(`'${field}'`);
    expect(r.jobId).toBe(jobId);
  });

  it("refuses bytes that are not UTF-8", () => {
    const bytes = new Uint8Array([...enc('{"id":"u8","repository":"org/repo","instructions":"'), 0xff, 0xfe, ...enc('"}')]);
    const r = parseSubmission(bytes, opts);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/not valid UTF-8/);
      expect(r.jobId).toBe("u8");
    }
  });

  const base = { repository: "org/repo", instructions: "x" };
  it.each([
    ["a NUL in the instructions", { ...base, instructions: "a\u0000b" }, "task.instructions", /control character U\+0000/],
    ["an ESC in a step", { ...base, task: { steps: [{ title: "t\u001b[2J" }] } }, "task.steps[0].title", /control character U\+001B/],
    ["a NUL in a skill's args", { ...base, task: { skill: { id: "lint", args: { deep: ["ok", "a\u0000"] } } } }, "task.skill.args.deep[1]", /control character/],
    ["newBranch HEAD", { ...base, task: { git: { newBranch: "HEAD" } } }, "task.git.newBranch", /git ref.*special/],
    ["a ref ending in .lock", { ...base, ref: "feature.lock" }, "task.git.startingBranch", /git ref.*\.lock/],
    ["a branch ending in /", { ...base, task: { git: { newBranch: "feature/" } } }, "task.git.newBranch", /git ref/],
    ["a branch ending in .", { ...base, task: { git: { newBranch: "feature." } } }, "task.git.newBranch", /git ref/],
    ["a branch with //", { ...base, task: { git: { newBranch: "a//b" } } }, "task.git.newBranch", /git ref/],
    ["a branch with a control character", { ...base, task: { git: { newBranch: "a\u0007b" } } }, "task.git.newBranch", /git ref/],
    ["an option-like branch", { ...base, task: { git: { newBranch: "-f" } } }, "task.git.newBranch", /git ref.*'-'/],
    ["FETCH_HEAD", { ...base, task: { git: { startingBranch: "FETCH_HEAD" } } }, "task.git.startingBranch", /special/],
    ["an option-like model", { ...base, model: "--dangerously-bypass" }, "task.runtime.model", /must not start with '-'/],
    ["a model with whitespace", { ...base, task: { runtime: { model: "gpt 5" } } }, "task.runtime.model", /whitespace/],
    ["an option-like effort", { ...base, task: { runtime: { effort: "-x" } } }, "task.runtime.effort", /must not start with '-'/],
    ["an unknown key in task", { repository: "org/repo", task: { instructions: "x", bogus: 1 } }, "task.bogus", /task: unknown field 'bogus'/],
    ["an unknown key in task.runtime", { ...base, task: { runtime: { sandbox: "off" } } }, "task.runtime.sandbox", /unknown field 'sandbox'/],
    ["an unknown key in task.git", { ...base, task: { git: { branch: "x" } } }, "task.git.branch", /unknown field 'branch'/],
    ["an unknown key in task.publish", { ...base, task: { publish: { mode: "pr", draft: true } } }, "task.publish.draft", /unknown field 'draft'/],
    ["an unknown key in a step", { ...base, task: { steps: [{ title: "t", run: "x" }] } }, "task.steps[0].run", /unknown field 'run'/],
    ["an unknown key in a skill", { ...base, task: { skill: { id: "lint", version: 2 } } }, "task.skill.version", /unknown field 'version'/],
    ["task.runtime that is not an object", { ...base, task: { runtime: "claude" } }, "task.runtime", /expected an object/],
  ])("refuses %s, naming the field", (_name, input, field, reason) => {
    const r = rejected(input);
    expect(r.field).toBe(field);
    expect(r.reason).toMatch(reason);
  });

  it("still accepts branch names git takes", () => {
    for (const b of ["main", "feature/x", "release-1.2", "HEAD/x", "ünï", "a.lock.b", "refs/heads/x"]) {
      expect(accepted({ ...base, task: { git: { newBranch: b } } }).task.git?.newBranch).toBe(b);
    }
    expect(accepted({ ...base, task: { runtime: { model: "gpt-5-codex", effort: "high" } } }).task.runtime?.model).toBe("gpt-5-codex");
    expect(accepted({ ...base, instructions: "line one\n\tline two\r\n" }).task.instructions).toBe("line one\n\tline two");
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

  it("keeps token counts: a secret-named key with a number is not a secret", () => {
    const usage = { input_tokens: 1234, output_tokens: 5, max_tokens: 6, total_tokens: 7, cached_input_tokens: 8, reasoning_output_tokens: 9, tokens: 10, token: 11 };
    expect(accepted({ repository: "org/repo", instructions: "x", metadata: { usage } }).metadata).toEqual({ usage });
  });

  it.each([
    [{ repository: "org/repo", instructions: "x", metadata: { ghp_abcdefghijklmnopqrstuvwxyz0123456789: "x" } }, "metadata.<a key that looks like a GitHub token (ghp_…)>"],
    [{ repository: "org/repo", instructions: "x", "sk-abcdefghijklmnopqrstuvwx": 1 }, "<a key that looks like an OpenAI/Anthropic-style key (sk-…)>"],
    [{ repository: "org/repo", task: { instructions: "x", AIzaSyA_abcdefghijklmnopqrstuvwxyz12345: 1 } }, "task.<a key that looks like a Google API key (AIza…)>"],
  ])("refuses a secret-shaped key without echoing it in the reason, field or copy (%#)", (input, field) => {
    const r = rejected(input);
    expect(r.field).toBe(field);
    expect(JSON.stringify(r)).not.toMatch(/ghp_a|sk-a|AIzaSyA/);
  });

  it("never echoes a secret-shaped key as an unknown field", () => {
    // Long enough to be refused as a field, too short to be a key's secret shape: still not echoed whole.
    const r = rejected({ repository: "org/repo", instructions: "x", [`x${"k".repeat(200)}`]: 1 });
    expect(r.reason).toMatch(/unknown field '<a 201-character key>'/);
  });

  it("never quotes the payload back in a JSON error (V8's message does), nor takes a secret as the job id", () => {
    const r = rejected(`${secretValue} is not JSON`);
    expect(r.reason).toMatch(/not valid JSON \(Unexpected token 's'\)/);
    expect(JSON.stringify(r)).not.toContain("sk-proj");
    const asId = rejected({ id: secretValue.replaceAll("-", "_").replace("sk_", "sk-"), repository: "org/repo", instructions: "x" });
    expect(asId.jobId).toBe("generated-id");
    expect(JSON.stringify(asId)).not.toContain("sk-proj");
  });

  it("redacts a secret that straddles the end of the kept copy", () => {
    const ghp = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    const r = rejected(`{"id":"s1","instructions":"${"y".repeat(4_050)} ${ghp} ${"z".repeat(9_000)}"}`);
    expect(String(r.original)).not.toMatch(/ghp_|abcdefghij/);
  });

  it("redacts secrets in a copy of a payload that is not JSON", () => {
    const r = rejected(`{"repository":"org/repo","token": "abc123", "note": "${secretValue}"`);
    expect(String(r.original)).not.toMatch(/abc123|sk-proj-/);
  });
});

describe("parseSubmission: any input", () => {
  it("gives every one of 2,000 generated byte strings and JSON values a verdict, never a throw", () => {
    const anyBytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.json().map((j) => enc(j)),
      fc.jsonValue().map((v) => enc({ repository: "org/repo", instructions: "x", metadata: { v } })),
      fc.dictionary(fc.string(), fc.jsonValue()).map((d) => enc({ repository: "org/repo", task: { instructions: "x", ...d } })),
    );
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        const r = parseSubmission(bytes, opts);
        if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 2_000, seed: 6 },
    );
  });

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

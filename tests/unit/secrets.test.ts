import { describe, expect, it } from "vitest";
import { findSecret, isSecretKey, MAX_SCAN_LINE, MAX_WALK_DEPTH, redact, redactText, secretValueKind } from "../../src/secrets.js";

/** Milliseconds one call takes (the best of three, so a stray GC pause does not count). */
function timed(f: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const hex = (n: number) => Array.from({ length: n }, (_, i) => "0123456789abcdef"[(i * 7 + (i >> 3)) % 16]).join("");

// Before the fix these took seconds (150 kB of hex: ~9–14 s in redactText; a 65,000-character
// string: ~8 s in findSecret); linear scanning takes a few milliseconds. The bound is generous
// on purpose: it tells linear from quadratic, not fast from slow.
describe("scanning is linear", () => {
  it("redacts a 150 kB line of hex in well under 200 ms", () => {
    const line = hex(150_000);
    expect(timed(() => redactText(line))).toBeLessThan(200);
  });

  it.each([
    ["letters", "a".repeat(65_000)],
    ["letters and digits", "a1".repeat(32_500)],
    ["scheme-like text", "a://b:".repeat(11_000)],
    ["repeated key names", "token".repeat(13_000)],
    ["repeated secret prefixes", "sk-".repeat(22_000)],
    ["unclosed quotes after a secret key", 'password: "'.repeat(6_000)],
    ["private key headers", "-----BEGIN ".repeat(6_000)],
    ["mysql words", "mysql -p ".repeat(7_000)],
  ])("checks a 65,000-character affinityKey of %s in well under 200 ms", (_name, value) => {
    expect(timed(() => findSecret({ repository: "org/repo", affinityKey: value }))).toBeLessThan(200);
    expect(timed(() => redactText(value))).toBeLessThan(200);
  });

  it("cuts a line longer than MAX_SCAN_LINE, with a marker, and never keeps a secret in part", () => {
    const secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
    for (const at of [MAX_SCAN_LINE - 600, MAX_SCAN_LINE - 30, MAX_SCAN_LINE - 5, MAX_SCAN_LINE + 10]) {
      const line = `${"x".repeat(at)} ${secret} ${"y".repeat(40_000)}`;
      const out = redactText(line);
      expect(out.length).toBeLessThan(MAX_SCAN_LINE + 100);
      expect(out).toMatch(/…\[line truncated: \d+ more characters not shown\]$/);
      expect(out).not.toMatch(/sk-proj/);
    }
    const unbroken = `${"x".repeat(MAX_SCAN_LINE - 40)}${secret}${"z".repeat(10_000)}`;
    expect(redactText(unbroken)).not.toMatch(/sk-proj/);
    expect(redactText("short line")).toBe("short line");
  });
});

describe("redactText: common shapes in free text", () => {
  it.each([
    ["password: hunter2", "password: [REDACTED]"],
    ['{"pwd": "s3cr3t", "user": "bob"}', '{"pwd": "[REDACTED]", "user": "bob"}'],
    ["PASSWORD='correct horse' next", "PASSWORD='[REDACTED]' next"],
    ["mysql -u root -phunter2 mydb", "mysql -u root -p[REDACTED] mydb"],
    ["mkdir -p /tmp/x && mysqldump -pS3cret db", "mkdir -p /tmp/x && mysqldump -p[REDACTED] db"],
    ["sshpass -p hunter2 ssh host", "sshpass -p [REDACTED] ssh host"],
    ["curl -u bob:hunter2 https://example.com", "curl -u bob:[REDACTED] https://example.com"],
    ["export GH_TOKEN=abc123 PGPASSWORD=pw LANG=C", "export GH_TOKEN=[REDACTED] PGPASSWORD=[REDACTED] LANG=C"],
    ["--password=abc", "--password=[REDACTED]"],
    ["Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"],
    ["Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "Authorization: Bearer [REDACTED]"],
    ['{\\"token\\": \\"abc\\"}', '{\\"token\\": \\"[REDACTED]\\"}'],
    ["git clone https://bob:hunter2@github.com/org/repo.git", "git clone https://[REDACTED]@github.com/org/repo.git"],
    ["use sk-proj-abcdefghijklmnopqrstuvwxyz0123 now", "use [REDACTED] now"],
    ["-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\ndef\n-----END RSA PRIVATE KEY-----\nafter", "[REDACTED]\nafter"],
  ])("%s", (input, output) => {
    expect(redactText(input)).toBe(output);
  });

  it.each([
    '{"input_tokens": 1234, "output_tokens": 56, "max_tokens": 100, "total_tokens": 9, "tokens": 3}',
    '{"cached_input_tokens": 7, "reasoning_output_tokens": 8, "token": 5, "password": true, "secret": null}',
    "input_tokens=1234 max_tokens: 5",
    "the tokenizer: bert",
    "https://someone@github.com/org/repo and std::string x; if (password == y)",
  ])("keeps numbers, booleans and harmless text: %s", (text) => {
    expect(redactText(text)).toBe(text);
  });
});

describe("redact and findSecret: structures", () => {
  const ghp = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
  const sk = "sk-abcdefghijklmnopqrstuvwx";

  it("keeps token counts, redacts secret-named strings and renames secret-shaped keys", () => {
    const copy = redact(
      JSON.parse(
        `{"usage":{"input_tokens":5,"output_tokens":6,"max_tokens":7,"total_tokens":8,"cached_input_tokens":9,"reasoning_output_tokens":10,"tokens":11},` +
          `"password":"x","token":12,"credentials":{"user":"u","n":3},"${ghp}":1,"note":"key ${sk}"}`,
      ),
    );
    expect(copy).toEqual({
      usage: { input_tokens: 5, output_tokens: 6, max_tokens: 7, total_tokens: 8, cached_input_tokens: 9, reasoning_output_tokens: 10, tokens: 11 },
      password: "[REDACTED]",
      token: 12,
      credentials: { user: "[REDACTED]", n: 3 },
      "[REDACTED KEY 1]": 1,
      note: "key [REDACTED]",
    });
    expect(JSON.stringify(copy)).not.toContain("ghp_");
  });

  it("flags a secret-shaped key without echoing it", () => {
    const found = findSecret({ metadata: { [ghp]: "x" } });
    expect(found?.field).toBe("metadata.<a key that looks like a GitHub token (ghp_…)>");
    expect(JSON.stringify(found)).not.toContain(ghp);
    expect(findSecret({ [sk]: 1 })?.field).toMatch(/^<a key that looks like an OpenAI/);
  });

  it("flags secret-named keys with strings, never with numbers or booleans", () => {
    expect(findSecret({ metadata: { password: "p" } })?.field).toBe("metadata.password");
    expect(findSecret({ metadata: { credentials: { user: "u" } } })?.field).toBe("metadata.credentials.user");
    expect(findSecret({ usage: { input_tokens: 1234, token: 5, token_count: 6, password: false, secret: null } })).toBeUndefined();
    expect(isSecretKey("input_tokens")).toBe(false);
    expect(isSecretKey("GH_TOKEN")).toBe(true);
    expect(isSecretKey("PGPASSWORD")).toBe(true);
    expect(secretValueKind("https://bob:hunter2@example.com/x")).toMatch(/embedded password/);
  });

  it.each([
    ["objects 5,000 levels deep", 5_000, (v: unknown) => ({ a: v })],
    ["arrays 20,000 levels deep", 20_000, (v: unknown) => [v]],
  ])("is safe on %s (no stack overflow)", (_name, depth, wrap) => {
    let deep: unknown = "sk-abcdefghijklmnopqrstuvwx";
    for (let i = 0; i < depth; i++) deep = wrap(deep);
    expect(findSecret(deep)?.why).toMatch(new RegExp(`more than ${MAX_WALK_DEPTH} levels deep`));
    const copy = JSON.stringify(redact(deep));
    expect(copy).toContain("[TOO DEEP]");
    expect(copy).not.toContain("sk-");
  });

  it("keeps a key named __proto__ as a plain key of the copy", () => {
    const copy = redact(JSON.parse('{"__proto__":{"password":"x"},"a":1}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(JSON.stringify(copy)).toBe('{"__proto__":{"password":"[REDACTED]"},"a":1}');
  });
});

/**
 * Secret detection and redaction. Auth lives on volumes; a job payload that carries
 * anything secret-looking is refused, and copies kept for operators are redacted.
 */

/** Words in a key that mark its value as secret (matched per word: `authToken`, `api_key`, `GH_TOKEN`). */
const SECRET_WORDS = new Set(["token", "secret", "secrets", "password", "passwd", "pwd", "credential", "credentials", "apikey", "privatekey", "accesskey", "cookie"]);
const SECRET_WORD_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["api", "key"],
  ["private", "key"],
  ["access", "key"],
  ["secret", "key"],
  ["client", "secret"],
];

/** Values that look like live credentials whatever key holds them. */
const SECRET_VALUE_PATTERNS: ReadonlyArray<readonly [string, RegExp]> = [
  ["OpenAI/Anthropic-style key (sk-…)", /\bsk-[A-Za-z0-9_-]{16,}/],
  ["GitHub token (ghp_…)", /\bgh[opsur]_[A-Za-z0-9]{20,}/],
  ["GitHub token (github_pat_…)", /\bgithub_pat_[A-Za-z0-9_]{20,}/],
  ["Google API key (AIza…)", /\bAIza[0-9A-Za-z_-]{30,}/],
  ["Slack token (xox…)", /\bxox[abprs]-[A-Za-z0-9-]{10,}/],
  ["AWS access key id", /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/],
  ["private key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ["bearer token", /\bBearer\s+[A-Za-z0-9._~+/-]{20,}/],
  ["URL with embedded password", /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/i],
];

const REDACTED = "[REDACTED]";

function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

export function isSecretKey(key: string): boolean {
  const words = keyWords(key);
  if (words.some((w) => SECRET_WORDS.has(w))) return true;
  return SECRET_WORD_PAIRS.some(([a, b]) => words.some((w, i) => w === a && words[i + 1] === b));
}

/** The kind of secret a string looks like, or undefined. */
export function secretValueKind(value: string): string | undefined {
  return SECRET_VALUE_PATTERNS.find(([, re]) => re.test(value))?.[0];
}

export interface SecretFinding {
  /** Dotted path of the field, e.g. `task.runtime.token` or `metadata.notes`. */
  field: string;
  /** Why it was flagged; never contains the value. */
  why: string;
}

/** Walks a parsed JSON value and reports the first secret-looking field. */
export function findSecret(value: unknown, path = ""): SecretFinding | undefined {
  if (typeof value === "string") {
    const kind = secretValueKind(value);
    return kind ? { field: path || "(root)", why: `its value looks like a ${kind}` } : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findSecret(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) {
      const field = path ? `${path}.${key}` : key;
      const empty = child === null || child === undefined || child === "" || child === false;
      if (isSecretKey(key) && !empty) return { field, why: `the key name '${key}' marks a secret` };
      const found = findSecret(child, field);
      if (found) return found;
    }
  }
  return undefined;
}

/** A deep copy with secret-keyed and secret-looking values replaced by [REDACTED]. */
export function redact(value: unknown): unknown {
  if (typeof value === "string") return redactText(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, isSecretKey(k) && v !== null && v !== "" ? REDACTED : redact(v)]),
    );
  }
  return value;
}

/** Replaces every secret-looking run of characters in free text. */
export function redactText(text: string): string {
  let out = text;
  for (const [, re] of SECRET_VALUE_PATTERNS) {
    out = out.replace(new RegExp(re.source, re.flags.includes("g") ? re.flags : `${re.flags}g`), REDACTED);
  }
  // "token": "abc" / password=abc in free text (e.g. a payload that is not valid JSON)
  return out.replace(
    /("?[A-Za-z_]*(?:token|secret|password|passwd|api_?key|credential)s?"?\s*[:=]\s*)("[^"]*"|[^\s,}&]+)/gi,
    `$1"${REDACTED}"`,
  );
}

/**
 * Secret detection and redaction. Auth lives on volumes; a job payload that carries
 * anything secret-looking is refused, and copies kept for operators are redacted.
 *
 * Everything here runs on untrusted text on the event loop that also sends heartbeats, so every
 * scan is linear in its input: value patterns start on a literal and have no quantifier that can
 * fail after a long run, the rest is hand-written scanning, and free text is scanned line by line
 * with a bound on line length. Structures are walked with an explicit stack (any depth is safe).
 */

/**
 * Longest line `redactText` scans and keeps: 32 KiB. Agent output lines past that (a minified
 * bundle, a base64 blob) are cut there, with a marker saying how much was dropped; nobody reads
 * the rest in a log, and the bound keeps each line's cost small and fixed.
 */
export const MAX_SCAN_LINE = 32_768;
/** Nesting beyond which `redact` and `findSecret` stop descending (a marker, or a finding, instead). */
export const MAX_WALK_DEPTH = 64;

export const REDACTED = "[REDACTED]";
export const TOO_DEEP = "[TOO DEEP]";

/** Words in a key that mark its value as secret (matched per word: `authToken`, `api_key`, `GH_TOKEN`). */
const SECRET_WORDS = new Set([
  "token", "secret", "secrets", "password", "passwd", "pwd", "credential", "credentials",
  "apikey", "privatekey", "accesskey", "cookie", "authorization",
]);
/** A word that ends with one of these marks a secret too: `PGPASSWORD`, `authtoken`, `clientsecret`. */
const SECRET_SUFFIXES = ["password", "passwd", "secret", "token", "apikey"];
const SECRET_WORD_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ["api", "key"],
  ["private", "key"],
  ["access", "key"],
  ["secret", "key"],
  ["client", "secret"],
];

/**
 * Values that look like live credentials whatever key holds them. Each starts on a literal and
 * ends on an open-ended run (or a fixed count), so a failed attempt costs a bounded number of steps.
 * A `secret` group, where present, is the part redacted (the rest stays readable).
 */
const SECRET_VALUE_PATTERNS: ReadonlyArray<readonly [kind: string, re: RegExp]> = [
  ["an OpenAI/Anthropic-style key (sk-…)", /\bsk-[A-Za-z0-9_-]{16,}/dg],
  ["a GitHub token (ghp_…)", /\bgh[opsur]_[A-Za-z0-9]{20,}/dg],
  ["a GitHub token (github_pat_…)", /\bgithub_pat_[A-Za-z0-9_]{20,}/dg],
  ["a Google API key (AIza…)", /\bAIza[0-9A-Za-z_-]{30,}/dg],
  ["a Slack token (xox…)", /\bxox[abprs]-[A-Za-z0-9-]{10,}/dg],
  ["an AWS access key id", /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/dg],
  ["a private key", /-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----/dg],
  ["a bearer token", /\bBearer[ \t]{1,16}(?<secret>[A-Za-z0-9._~+/-]{20,})/dg],
];
const URL_CREDENTIALS_KIND = "a URL with an embedded password";

interface Span {
  start: number;
  end: number;
}

function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** A key whose name marks its value as secret (`password`, `apiKey`, `GH_TOKEN`); `input_tokens` is not one. */
export function isSecretKey(key: string): boolean {
  if (key.length > 256) return false;
  const words = keyWords(key);
  if (words.some((w) => SECRET_WORDS.has(w) || SECRET_SUFFIXES.some((s) => w.endsWith(s)))) return true;
  return SECRET_WORD_PAIRS.some(([a, b]) => words.some((w, i) => w === a && words[i + 1] === b));
}

function* patternSpans(text: string): Generator<Span & { kind: string }> {
  for (const [kind, re] of SECRET_VALUE_PATTERNS) {
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const [start, end] = m.indices?.groups?.secret ?? m.indices![0]!;
      yield { kind, start, end };
    }
  }
}

/** Letters, digits and `+ . -`: what a URL scheme is made of. */
function isSchemeCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 43 || c === 46 || c === 45;
}
function isSpaceCode(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Where an authority (`user:password@host:port`) ends: `/`, whitespace, or what cannot be in a URL. */
function isAuthorityStopCode(c: number): boolean {
  return c === 47 || isSpaceCode(c) || c === 34 || c === 39 || c === 60 || c === 62 || c === 92 || c === 96;
}

/**
 * The `user:password` parts of `scheme://user:password@host` in the text; with `cutShort`, also the
 * part after the colon of `scheme://user:password` that has no `@` (a URL cut short), unless it is
 * a port number. (Only redaction goes that far: `http://host:port` in instructions is no secret.)
 * Hand-written: from each `://` the scan stops at the end of the authority, and the next `://`
 * holds a `/`, so no character is looked at twice.
 */
function urlCredentialSpans(text: string, cutShort = false): Span[] {
  const spans: Span[] = [];
  for (let i = text.indexOf("://"); i >= 0; i = text.indexOf("://", i + 3)) {
    let letter = false;
    for (let k = i - 1; k >= 0 && k >= i - 32 && isSchemeCode(text.charCodeAt(k)); k--) {
      const c = text.charCodeAt(k) | 0x20;
      if (c >= 97 && c <= 122) letter = true;
    }
    if (!letter) continue;
    const start = i + 3;
    let colon = -1;
    let at = -1;
    let j = start;
    for (; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (isAuthorityStopCode(c)) break;
      if (c === 64 /* @ */) at = j;
      else if (c === 58 /* : */ && colon < 0 && at < 0) colon = j;
    }
    if (at >= 0) {
      // `user:password@host` (user may be empty, as in redis://:password@host)
      if (colon >= 0 && colon < at - 1) spans.push({ start, end: at });
    } else if (cutShort && colon >= 0 && text.charCodeAt(start) !== 91 /* [ an IPv6 host */) {
      const rest = text.slice(colon + 1, j);
      if (rest.length > 0 && !/^\d+$/.test(rest)) spans.push({ start: colon + 1, end: j });
    }
  }
  return spans;
}

/** The kind of secret a string looks like (with its article: "a GitHub token (ghp_…)"), or undefined. */
export function secretValueKind(value: string): string | undefined {
  for (const span of patternSpans(value)) return span.kind;
  return urlCredentialSpans(value).length > 0 ? URL_CREDENTIALS_KIND : undefined;
}

/**
 * How a key is shown in a field path or a reason: as itself when short and plain, never when it
 * looks like a secret, and bounded when long.
 */
export function displayKey(key: string): string {
  const kind = secretValueKind(key);
  if (kind) return `<a key that looks like ${kind}>`;
  if (key.length === 0) return "<empty key>";
  if (key.length > 64) return `<a ${key.length}-character key>`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return JSON.stringify(key);
  return key;
}

/** `task.steps[2].skill`, from path segments; keys shown with displayKey. */
export function fieldPath(segments: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else {
      const key = displayKey(String(s));
      out += out ? `.${key}` : key;
    }
  }
  return out;
}

export interface SecretFinding {
  /** Dotted path of the field, e.g. `task.runtime.token` or `metadata.notes`; a secret-shaped key is never shown. */
  field: string;
  /** Why it was flagged; never contains the value. */
  why: string;
}

interface WalkItem {
  value: unknown;
  path: PropertyKey[];
  /** The nearest secret-named key above this value, when there is one. */
  secretKey: string | undefined;
}

/**
 * Walks a parsed JSON value (iteratively, in document order) and reports the first secret: a
 * secret-looking string anywhere, a key that itself looks like a secret, or a non-empty string under
 * a secret-named key. Numbers, booleans and null never count. A part nested deeper than
 * MAX_WALK_DEPTH is reported too, since it cannot be checked.
 */
export function findSecret(value: unknown, path: ReadonlyArray<PropertyKey> = []): SecretFinding | undefined {
  const stack: WalkItem[] = [{ value, path: [...path], secretKey: undefined }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    const v = item.value;
    if (typeof v === "string") {
      const kind = secretValueKind(v);
      if (kind) return { field: fieldPath(item.path) || "(root)", why: `its value looks like ${kind}` };
      if (item.secretKey !== undefined && v !== "") {
        return { field: fieldPath(item.path) || "(root)", why: `the key name '${displayKey(item.secretKey)}' marks a secret` };
      }
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (item.path.length - path.length >= MAX_WALK_DEPTH) {
      return { field: fieldPath(item.path) || "(root)", why: `it is nested more than ${MAX_WALK_DEPTH} levels deep, too deep to check` };
    }
    const children: WalkItem[] = [];
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) children.push({ value: v[i], path: [...item.path, i], secretKey: item.secretKey });
    } else {
      for (const [key, child] of Object.entries(v)) {
        const kind = secretValueKind(key);
        if (kind) return { field: fieldPath([...item.path, key]), why: `the key itself looks like ${kind}` };
        children.push({ value: child, path: [...item.path, key], secretKey: isSecretKey(key) ? key : item.secretKey });
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return undefined;
}

/**
 * A deep copy with secrets replaced by [REDACTED]: secret-looking strings (in values and in free
 * text), string values under secret-named keys, and keys that themselves look like secrets (renamed
 * `[REDACTED KEY n]`). Numbers, booleans and null are kept (`"input_tokens": 1234` stays). Parts
 * nested deeper than MAX_WALK_DEPTH become [TOO DEEP]. Iterative: safe on any depth.
 */
export function redact(value: unknown): unknown {
  const root: { v: unknown } = { v: undefined };
  let renamed = 0;
  const stack: Array<{ value: unknown; depth: number; secret: boolean; set: (v: unknown) => void }> = [
    { value, depth: 0, secret: false, set: (v) => (root.v = v) },
  ];
  while (stack.length > 0) {
    const { value: v, depth, secret, set } = stack.pop()!;
    if (typeof v === "string") {
      set(secret && v !== "" ? REDACTED : redactText(v));
    } else if (v === null || typeof v !== "object") {
      set(v);
    } else if (depth >= MAX_WALK_DEPTH) {
      set(TOO_DEEP);
    } else if (Array.isArray(v)) {
      const out: unknown[] = new Array<unknown>(v.length);
      set(out);
      for (let i = 0; i < v.length; i++) stack.push({ value: v[i], depth: depth + 1, secret, set: (c) => (out[i] = c) });
    } else {
      const out: Record<string, unknown> = {};
      set(out);
      for (const [key, child] of Object.entries(v)) {
        const name = secretValueKind(key) ? `[REDACTED KEY ${++renamed}]` : key;
        // defineProperty: a key named `__proto__` stays a plain property of the copy.
        Object.defineProperty(out, name, { value: undefined, enumerable: true, writable: true, configurable: true });
        stack.push({ value: child, depth: depth + 1, secret: secret || isSecretKey(key), set: (c) => (out[name] = c) });
      }
    }
  }
  return root.v;
}

// ---------------------------------------------------------------------------------------------
// Free text

/** Characters a line is cut after: whitespace and the punctuation that separates tokens. */
function isBreakCode(c: number): boolean {
  return isSpaceCode(c) || '"\'`,;:/@=&<>()[]{}|'.includes(String.fromCharCode(c));
}

/**
 * A line cut to MAX_SCAN_LINE, with a marker. The cut backs off to the last separator within 512
 * characters, so no secret is kept in part; in one long unbroken run it drops 64 more characters,
 * so any secret kept in part keeps enough of itself to be recognised (and redacted).
 */
function boundLine(line: string): { kept: string; marker: string } {
  if (line.length <= MAX_SCAN_LINE) return { kept: line, marker: "" };
  let cut = MAX_SCAN_LINE;
  while (cut > MAX_SCAN_LINE - 512 && !isBreakCode(line.charCodeAt(cut - 1))) cut--;
  if (cut === MAX_SCAN_LINE - 512) cut = MAX_SCAN_LINE - 64;
  return { kept: line.slice(0, cut), marker: `…[line truncated: ${line.length - cut} more characters not shown]` };
}

/** `[A-Za-z0-9_.-]`: what a key in `key=value` / `"key": value` text is made of. */
function isKeyCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 45;
}
/** Where an unquoted value ends. */
function isValueStopCode(c: number): boolean {
  return isSpaceCode(c) || '"\'`,;&<>)]}\\'.includes(String.fromCharCode(c));
}
function skipBlanks(line: string, k: number, max: number): number {
  const end = Math.min(line.length, k + max);
  while (k < end && (line.charCodeAt(k) === 32 || line.charCodeAt(k) === 9)) k++;
  return k;
}

const PLAIN_LITERAL = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$/;
const AUTH_SCHEMES = new Set(["bearer", "basic", "token", "digest", "bot"]);

interface Value extends Span {
  /** Where scanning goes on after the value. */
  next: number;
  quoted: boolean;
}

/** The value starting at k: quoted (', ", or \" inside an escaped JSON string) up to its closing quote or the line's end; or a bare word. */
function readValue(line: string, k: number): Value {
  const n = line.length;
  const escaped = line[k] === "\\" && line[k + 1] === '"';
  const q = escaped ? '"' : line[k];
  if (q === '"' || q === "'") {
    const start = k + (escaped ? 2 : 1);
    let j = start;
    while (j < n) {
      if (escaped ? line[j] === "\\" && line[j + 1] === '"' : line[j] === q) break;
      j += line[j] === "\\" && !escaped ? 2 : 1;
    }
    const end = Math.min(j, n);
    return { start, end, next: Math.min(n, end + (escaped ? 2 : 1)), quoted: true };
  }
  let j = k;
  while (j < n && !isValueStopCode(line.charCodeAt(j))) j++;
  return { start: k, end: j, next: j, quoted: false };
}

/** `password: x`, `"pwd": "x"`, `GH_TOKEN=x`, `--password=x`, `Authorization: Basic x`: the values of secret-named keys. */
function keyValueSpans(line: string, spans: Span[]): void {
  const n = line.length;
  let i = 0;
  while (i < n) {
    if (!isKeyCode(line.charCodeAt(i))) {
      i++;
      continue;
    }
    let a = i;
    let b = i;
    while (b < n && isKeyCode(line.charCodeAt(b))) b++;
    i = b;
    while (a < b && (line[a] === "-" || line[a] === "_" || line[a] === ".")) a++;
    if (b - a === 0 || b - a > 64) continue;
    let k = b;
    if (line[k] === "\\" && line[k + 1] === '"') k += 2;
    else if (line[k] === '"' || line[k] === "'") k++;
    k = skipBlanks(line, k, 8);
    const sep = line[k];
    if (sep !== ":" && sep !== "=") continue;
    if (line[k + 1] === sep) continue; // `::` and `==` are not assignments
    k = skipBlanks(line, k + 1, 8);
    if (k >= n || !isSecretKey(line.slice(a, b))) continue;
    const v = readValue(line, k);
    const value = line.slice(v.start, v.end);
    if (v.end <= v.start || value === REDACTED || (!v.quoted && PLAIN_LITERAL.test(value))) {
      i = Math.max(i, v.next);
      continue;
    }
    if (!v.quoted && AUTH_SCHEMES.has(value.toLowerCase())) {
      // `Authorization: Basic dXNlcjpw`: the scheme stays readable, the credential after it goes.
      const after = skipBlanks(line, v.end, 16);
      const cred = readValue(line, after);
      if (after > v.end && cred.end > cred.start) {
        spans.push({ start: cred.start, end: cred.end });
        i = Math.max(i, cred.next);
        continue;
      }
    }
    spans.push({ start: v.start, end: v.end });
    i = Math.max(i, v.next);
  }
}

/** Commands whose password is an option: `mysql -pX`, `sshpass -p X`, `curl -u user:X`. */
const PASSWORD_COMMANDS = /\b(?:mysql(?:dump|admin|import|show|check|binlog|pump|sh)?|mariadb(?:-dump|-admin|dump|admin)?|sshpass|curl)\b/g;

function commandSpans(line: string, spans: Span[]): void {
  PASSWORD_COMMANDS.lastIndex = 0;
  const found: Array<{ name: string; end: number; start: number }> = [];
  for (let m = PASSWORD_COMMANDS.exec(line); m; m = PASSWORD_COMMANDS.exec(line)) {
    found.push({ name: m[0], start: m.index, end: m.index + m[0].length });
  }
  for (let f = 0; f < found.length; f++) {
    const { name, end } = found[f]!;
    // Only the words up to the next command name (or the line's end): each character is read once.
    const limit = found[f + 1]?.start ?? line.length;
    const words: Span[] = [];
    for (let j = end; j < limit; ) {
      while (j < limit && isSpaceCode(line.charCodeAt(j))) j++;
      const s = j;
      while (j < limit && !isSpaceCode(line.charCodeAt(j))) j++;
      if (j > s) words.push({ start: s, end: j });
    }
    for (let w = 0; w < words.length; w++) {
      const word = line.slice(words[w]!.start, words[w]!.end);
      if (word === "|" || word === ";" || word === "&&" || word === "||") break;
      const next = words[w + 1];
      if (name === "curl") {
        const cred = word === "-u" || word === "--user" ? next : word.startsWith("-u") ? { start: words[w]!.start + 2, end: words[w]!.end } : undefined;
        const colon = cred ? line.indexOf(":", cred.start) : -1;
        if (cred && colon >= 0 && colon < cred.end - 1) spans.push({ start: colon + 1, end: cred.end });
      } else if (word.startsWith("-p") && word.length > 2 && word[2] !== "-") {
        spans.push({ start: words[w]!.start + 2, end: words[w]!.end });
      } else if (name === "sshpass" && word === "-p" && next) {
        spans.push(next);
      }
    }
  }
}

function applySpans(text: string, spans: Span[]): string {
  if (spans.length === 0) return text;
  spans.sort((x, y) => x.start - y.start);
  let out = "";
  let at = 0;
  for (const { start, end } of spans) {
    if (end <= at) continue;
    out += text.slice(at, Math.max(at, start)) + (start >= at ? REDACTED : "");
    at = end;
  }
  return out + text.slice(at);
}

function redactLine(line: string): string {
  const { kept, marker } = boundLine(line);
  const spans: Span[] = [...patternSpans(kept), ...urlCredentialSpans(kept, true)];
  keyValueSpans(kept, spans);
  commandSpans(kept, spans);
  return applySpans(kept, spans) + marker;
}

const PRIVATE_KEY_BEGIN = SECRET_VALUE_PATTERNS.find(([kind]) => kind === "a private key")![1];
const PRIVATE_KEY_END = /-----END [A-Z ]{0,40}PRIVATE KEY-----/g;

/**
 * Replaces every secret-looking run of characters in free text: secret-shaped values, URL
 * passwords, the values of secret-named keys (`password: x`, `"pwd": "x"`, `TOKEN=x`; never a
 * number such as `"input_tokens": 1234`), password options (`mysql -pX`) and whole private-key
 * blocks. Lines longer than MAX_SCAN_LINE are cut, with a marker. Linear in the text's length.
 */
export function redactText(text: string): string {
  // A private key block spans lines: it goes whole, up to its END line (or the text's end).
  const begin = PRIVATE_KEY_BEGIN;
  const blocks: Span[] = [];
  begin.lastIndex = 0;
  for (let m = begin.exec(text); m; m = begin.exec(text)) {
    PRIVATE_KEY_END.lastIndex = m.index + m[0].length;
    const end = PRIVATE_KEY_END.exec(text);
    const stop = end ? end.index + end[0].length : text.length;
    blocks.push({ start: m.index, end: stop });
    begin.lastIndex = stop;
  }
  const source = applySpans(text, blocks);
  let out = "";
  for (let at = 0; ; ) {
    const nl = source.indexOf("\n", at);
    out += redactLine(source.slice(at, nl < 0 ? source.length : nl));
    if (nl < 0) return out;
    out += "\n";
    at = nl + 1;
  }
}

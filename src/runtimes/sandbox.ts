/**
 * The agent's sandbox: bubblewrap (Debian's `bubblewrap`, `bwrap`) around the CLI.
 *
 * - Its own PID namespace (`--unshare-pid`): the agent sees only its own processes (never
 *   `/proc/<worker>/environ`), and when the CLI exits, or the worker dies (`--die-with-parent`),
 *   the namespace dies with everything in it — `setsid` and double forks included.
 * - Its own mount namespace holding only the system (`/usr`, `/etc`, the `/bin` and `/lib` links),
 *   node and the CLI's packages read-only, a private `/tmp` and `/dev/shm`, and read-write the
 *   run's own directories (repo, out, private home). The worker's data dir, other runs, the login
 *   volumes, the NATS credentials and the worker's home are simply not there; a path the operator
 *   names in `hide` that would be visible (under `/etc`, say) is masked.
 * - No capabilities. A root worker's agent runs as the agent user (setpriv, inside) or, with none
 *   configured, as uid 65534 of a user namespace (still root outside: it owns the run's files).
 * - The network is shared: the CLIs call their model APIs.
 *
 * The environment goes to bwrap as its own environment (inherited by the CLI), never as
 * `--setenv` arguments: an argv is readable by every user of the machine.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve, sep } from "node:path";
import { ConfigError } from "../errors.js";
import { dropPrivilegesArgv } from "./agent-user.js";
import type { AgentInvocation } from "./types.js";

export const SandboxMode = { auto: "auto", bwrap: "bwrap", none: "none" } as const;
export type SandboxMode = (typeof SandboxMode)[keyof typeof SandboxMode];

export interface SandboxLayout {
  /** The run's directory; every writable path must lie inside it. */
  jobDir: string;
  /** Bound read-write at the same paths (repo, out, private home). Missing ones are skipped. */
  writable: string[];
  /**
   * Paths outside the run's directory the agent may also write: only for a test's side channel
   * (the chaos suite's ledger), never a workdir root, a volume or anything of the worker's.
   */
  alsoWritable?: string[] | undefined;
  /** Extra paths bound read-only at the same paths. */
  readable?: string[] | undefined;
  /** Paths masked wherever they would be visible (the NATS creds file, a volume under /etc...). */
  hide?: string[] | undefined;
  /** The bwrap binary; default: `bwrap` on PATH. */
  bwrap?: string | undefined;
}

export interface SandboxProbe {
  ok: boolean;
  /** The bwrap binary that was tried. */
  bwrap: string;
  /** Why not, with the fix, when not ok. */
  reason?: string;
}

/** The system, read-only. Links (merged /usr) become the same links. */
const SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"];
/** The uid a root worker's agent has inside its user namespace when no agent user is configured. */
export const SANDBOX_UID = 65534;
/** Masked by default: readable by an agent whose uid is root's outside (owner permissions). */
const DEFAULT_HIDE = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssl/private"];

export function findBwrap(path = process.env.PATH ?? ""): string {
  return onPath("bwrap", path) ?? "bwrap";
}

function onPath(command: string, path: string): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const file = resolve(dir, command);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return undefined;
}

/** `inv` wrapped in bwrap: the returned invocation runs `bwrap <flags> -- [setpriv ... --] <bin> <args>`. */
export function sandboxInvocation(inv: AgentInvocation, o: SandboxLayout): AgentInvocation {
  const jobDir = resolve(o.jobDir);
  const writable = [...o.writable];
  // A TMPDIR inside the run's directory (gemini's) is the run's too.
  if (inv.env.TMPDIR && within(resolve(inv.env.TMPDIR), jobDir)) writable.push(inv.env.TMPDIR);
  for (const w of writable) {
    if (!within(resolve(w), jobDir)) throw new Error(`sandbox: writable path ${w} is outside the run's directory ${jobDir}`);
  }
  const args: string[] = [
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--new-session",
    "--cap-drop",
    "ALL",
  ];
  /** What the sandbox shows, as real paths (the /bin link shows /usr/bin). */
  const bound: string[] = [];
  // bwrap makes missing parents of a mount point 0700: make them 0755, or an agent user cannot pass.
  const made = new Set<string>(["/tmp", "/dev", "/dev/shm", "/proc"]);
  const parents = (p: string) => {
    const chain: string[] = [];
    for (let d = dirname(p); d !== dirname(d); d = dirname(d)) chain.unshift(d);
    for (const d of chain) {
      if (made.has(d) || bound.some((b) => within(d, b)) || SYSTEM_PATHS.includes(d)) continue;
      made.add(d);
      args.push("--perms", "0755", "--dir", d);
    }
  };
  const bind = (flag: "--ro-bind" | "--bind", p: string) => {
    parents(p);
    bound.push(realpathOrUndefined(p) ?? p);
    args.push(flag, p, p);
  };
  const bindRo = (p: string) => {
    const real = realpathOrUndefined(p) ?? p;
    if (bound.some((b) => within(real, b))) return;
    bind("--ro-bind", p);
  };
  for (const p of SYSTEM_PATHS) {
    const st = lstatOrUndefined(p);
    if (!st) continue;
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(p), p);
    else bindRo(p);
  }
  // A resolv.conf managed elsewhere (systemd-resolved's /run/...) must come along.
  const resolv = realpathOrUndefined("/etc/resolv.conf");
  if (resolv && !bound.some((b) => within(resolv, b))) bindRo(resolv);
  args.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp");
  // A bare command is looked up on the CLI's PATH here, where the whole machine can be seen.
  const bin = isAbsolute(inv.bin) ? inv.bin : (onPath(inv.bin, inv.env.PATH ?? "") ?? inv.bin);
  for (const p of runtimePaths(bin)) bindRo(p);
  for (const p of o.readable ?? []) if (existsSync(p)) bindRo(resolve(p));
  for (const w of [...writable, ...(o.alsoWritable ?? [])]) {
    const p = resolve(w);
    if (existsSync(p)) bind("--bind", p);
  }
  const asRoot = process.getuid?.() === 0;
  // An agent that is root outside has owner rights on root's files: mask /etc's private ones too.
  const rootOutside = asRoot && !inv.user;
  const masked = new Set<string>();
  for (const h of [...DEFAULT_HIDE, ...(rootOutside ? privateEtc() : []), ...(o.hide ?? [])]) {
    const st = statOrUndefined(h);
    if (!st) continue;
    // Both the name given and where it really is (a link under /etc, a merged /bin).
    for (const p of [resolve(h), realpathOrUndefined(h) ?? resolve(h)]) {
      // Only what would be visible needs a mask (no mount point can be made in a read-only bind).
      if (masked.has(p) || !bound.some((b) => within(p, b))) continue;
      masked.add(p);
      if (st.isDirectory()) args.push("--perms", "0000", "--tmpfs", p);
      else args.push("--ro-bind", "/dev/null", p);
    }
  }
  args.push("--chdir", resolve(inv.cwd));
  const drop = inv.user && asRoot ? dropPrivilegesArgv(inv.user) : [];
  if (drop.length > 0) args.push("--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID");
  // Root with no agent user: a user namespace where the agent is not uid 0 (it stays root outside,
  // so it can write the run's root-owned directories). A capless uid 0 breaks codex's own bwrap.
  else if (asRoot) args.push("--unshare-user", "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_UID));
  args.push("--", ...drop, bin, ...inv.args);
  const { user, ...rest } = inv;
  return {
    ...rest,
    bin: o.bwrap ?? findBwrap(),
    args,
    // As root the drop happens inside; otherwise bwrap itself runs as the given user (needs root anyway).
    ...(user && !asRoot ? { user } : {}),
  };
}

let etcSecrets: string[] | undefined;
/** Entries of /etc that others may not read (host keys, private TLS keys...), found once. */
function privateEtc(): string[] {
  if (etcSecrets) return etcSecrets;
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      const st = lstatOrUndefined(p);
      if (!st || st.isSymbolicLink()) continue;
      const closed = st.isDirectory() ? (st.mode & 0o005) !== 0o005 : (st.mode & 0o004) === 0;
      if (closed) found.push(p);
      else if (st.isDirectory() && depth < 6) walk(p, depth + 1);
    }
  };
  walk("/etc", 0);
  etcSecrets = found;
  return found;
}

/** What running `bin` needs besides the system: node's prefix and the package tree the CLI lives in. */
export function runtimePaths(bin: string): string[] {
  const paths = new Set<string>();
  const node = realpathOrUndefined(process.execPath);
  if (node) paths.add(dirname(dirname(node)));
  if (isAbsolute(bin)) {
    for (const p of [bin, realpathOrUndefined(bin)]) {
      if (!p) continue;
      // A launcher in node_modules resolves sibling packages (codex's native binary, gemini's deps).
      const parts = p.split(sep);
      const nm = parts.lastIndexOf("node_modules");
      paths.add(nm > 0 ? parts.slice(0, nm + 1).join(sep) : dirname(p));
    }
  }
  // Shortest first, so a path inside one already bound is skipped.
  return [...paths].sort((a, b) => a.length - b.length);
}

const probes = new Map<string, Promise<SandboxProbe>>();

/**
 * Runs bwrap once with the real flags (and the uid drop, for an agent user) and caches whether it
 * works, and why not.
 */
export function probeSandbox(opts: { bwrap?: string; user?: { uid: number; gid: number } | undefined } = {}): Promise<SandboxProbe> {
  const bwrap = opts.bwrap ?? findBwrap();
  const key = `${bwrap}|${opts.user ? `${opts.user.uid}:${opts.user.gid}` : ""}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = runProbe(bwrap, opts.user);
    probes.set(key, probe);
  }
  return probe;
}

async function runProbe(bwrap: string, user: { uid: number; gid: number } | undefined): Promise<SandboxProbe> {
  if (!isAbsolute(bwrap) && findBwrap() === "bwrap") {
    return { ok: false, bwrap, reason: "bwrap not installed: apt-get install bubblewrap (or run tools/install-bubblewrap.sh)" };
  }
  const dir = await mkdtemp(join(tmpdir(), "moonmind-sandbox-probe-"));
  try {
    const work = join(dir, "repo");
    await mkdir(work);
    if (user && process.getuid?.() === 0) await chown(work, user.uid, user.gid);
    const inv = sandboxInvocation(
      { bin: process.execPath, args: ["-e", "require('fs').writeFileSync('ok', '1')"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, cwd: work, ...(user ? { user } : {}) },
      { jobDir: dir, writable: [work], bwrap },
    );
    const outcome = await new Promise<{ code: number | string | null; stderr: string }>((done) => {
      execFile(inv.bin, inv.args, { env: inv.env, cwd: inv.cwd, timeout: 15_000, ...(inv.user ?? {}) }, (err, _out, stderr) => {
        done({ code: err ? ((err as NodeJS.ErrnoException).code ?? (err as { status?: number }).status ?? 1) : 0, stderr: String(stderr) });
      });
    });
    if (outcome.code === "ENOENT") return { ok: false, bwrap, reason: `bwrap not installed (${bwrap}): apt-get install bubblewrap` };
    if (outcome.code === 0 && existsSync(join(work, "ok"))) return { ok: true, bwrap };
    return { ok: false, bwrap, reason: refusal(outcome.stderr.trim() || `exit ${String(outcome.code)}`) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function refusal(stderr: string): string {
  const said = stderr.split("\n").at(-1)?.slice(0, 300) ?? stderr;
  if (/user namespace|Operation not permitted|No permissions/i.test(stderr)) {
    return (
      `bwrap cannot create its namespaces here (${said}): allow unprivileged user namespaces ` +
      "(sysctl kernel.unprivileged_userns_clone=1 / kernel.apparmor_restrict_unprivileged_userns=0), " +
      "or in a container drop the default seccomp/AppArmor confinement for bwrap, or set MOONMIND_AGENT_SANDBOX=none"
    );
  }
  return `bwrap failed: ${said}`;
}

/**
 * The sandbox a worker uses for a mode: `none` → none; `bwrap` → bwrap or a ConfigError naming the
 * fix; `auto` → bwrap when the probe passes, else none (with the probe's reason, for a warning).
 */
export async function resolveSandbox(
  mode: SandboxMode,
  opts: { bwrap?: string; user?: { uid: number; gid: number } | undefined } = {},
): Promise<{ kind: "bwrap" | "none"; reason?: string; bwrap?: string }> {
  if (mode === "none") return { kind: "none", reason: "MOONMIND_AGENT_SANDBOX=none" };
  const probe = await probeSandbox(opts);
  if (probe.ok) return { kind: "bwrap", bwrap: probe.bwrap };
  if (mode === "bwrap") {
    throw new ConfigError(`MOONMIND_AGENT_SANDBOX=bwrap but the sandbox does not work: ${probe.reason}`, {
      remedy: "install bubblewrap (tools/install-bubblewrap.sh), or set MOONMIND_AGENT_SANDBOX=auto or none",
    });
  }
  return { kind: "none", ...(probe.reason ? { reason: probe.reason } : {}) };
}

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}
function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
function statOrUndefined(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
function realpathOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

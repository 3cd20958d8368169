/**
 * `moonmind auth <runtime>`: log an agent CLI in on a login volume, copy an existing login in,
 * or run the very check a worker runs. tools/auth-<runtime>-volume.sh wrap it (and add the
 * hop into a compose service's container).
 */
import { spawn } from "node:child_process";
import { chmod, copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { execa } from "execa";
import { UsageError } from "../../errors.js";
import { createAdapter } from "../../runtimes/index.js";
import type { LoginVolume, RuntimeAdapter } from "../../runtimes/types.js";
import { RuntimeSchema, type Runtime } from "../../schemas/runtime.js";
import type { CliContext } from "../context.js";

export interface AuthOptions {
  local?: string;
  check?: boolean;
  sync?: string;
  apiKey?: boolean;
  token?: boolean;
  json?: boolean;
}

/** Login files per runtime, relative to the volume (and to a CLI's own home for --sync). */
const LOGIN_FILES: Record<Runtime, string[]> = {
  codex: ["auth.json", "config.toml"],
  claude: [".credentials.json", "oauth-token", "api-key"],
  gemini: [".gemini/settings.json", ".gemini/oauth_creds.json", ".gemini/google_accounts.json", "api-key"],
};

const VOLUME_ENV: Record<Runtime, string> = { codex: "CODEX_VOLUME_PATH", claude: "CLAUDE_VOLUME_PATH", gemini: "GEMINI_HOME" };

/** The volume: --local, else the variable a worker reads when it is set, else the dev stack's. */
export function authVolumePath(ctx: CliContext, runtime: Runtime, local: string | undefined, env = process.env): string {
  if (local) return resolve(local);
  const fromEnv = env[VOLUME_ENV[runtime]];
  if (fromEnv) return resolve(fromEnv);
  return resolve(ctx.config.env.MOONMIND_DATA_DIR, "auth", runtime);
}

export async function authCommand(ctx: CliContext, runtimeName: string, opts: AuthOptions, readStdin: () => Promise<string>): Promise<number> {
  const runtime = RuntimeSchema.safeParse(runtimeName);
  if (!runtime.success) throw new UsageError(`unknown runtime '${runtimeName}'; expected codex, claude or gemini`);
  const modes = [opts.check, opts.sync !== undefined, opts.apiKey, opts.token].filter(Boolean).length;
  if (modes > 1) throw new UsageError("give one of --check, --sync, --api-key, --token");
  if (opts.token && runtime.data !== "claude") throw new UsageError("--token is for claude (the output of `claude setup-token`)");

  // A login that can only be refused must not touch the volume first.
  const interactive = !opts.check && opts.sync === undefined && !opts.apiKey && !opts.token;
  if (interactive && !process.stdin.isTTY) {
    throw new UsageError(`the ${runtime.data} login needs a terminal; use --api-key${runtime.data === "claude" ? " or --token" : ""} with the secret on stdin, or --sync DIR`);
  }
  const adapter = createAdapter(runtime.data, ctx.config);
  const path = authVolumePath(ctx, runtime.data, opts.local);
  const volume: LoginVolume = { name: path, path };
  await mkdir(path, { recursive: true, mode: 0o700 });

  if (opts.check) return report(ctx, adapter, volume, opts.json);
  if (opts.sync !== undefined) {
    const copied = await syncLogin(runtime.data, resolve(opts.sync), path);
    if (copied.length === 0) throw new UsageError(`no ${runtime.data} login files (${LOGIN_FILES[runtime.data].join(", ")}) in ${opts.sync}`);
    ctx.err(`copied ${copied.join(", ")} into ${path}`);
    return report(ctx, adapter, volume, opts.json);
  }
  if (opts.apiKey || opts.token) {
    const secret = (await readStdin()).trim();
    if (!secret) throw new UsageError(`pipe the ${opts.token ? "token" : "key"} on stdin, e.g. printenv KEY | moonmind auth ${runtime.data} --${opts.token ? "token" : "api-key"}`);
    await storeSecret(adapter, runtime.data, path, secret, opts.token === true);
    return report(ctx, adapter, volume, opts.json);
  }
  const code = await interactiveLogin(adapter, runtime.data, path);
  if (code !== 0) return code;
  return report(ctx, adapter, volume, opts.json);
}

async function report(ctx: CliContext, adapter: RuntimeAdapter, volume: LoginVolume, json?: boolean): Promise<number> {
  const check = await adapter.check(volume);
  if (json) ctx.out(JSON.stringify({ runtime: adapter.runtime, volume: volume.path, state: check.state, ...check.result }));
  else ctx.out(`${adapter.runtime} login on ${volume.path}: ${check.result.status} (${check.state}): ${check.result.message}`);
  return check.result.status === "failed" ? 78 : 0;
}

export async function syncLogin(runtime: Runtime, from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  for (const file of LOGIN_FILES[runtime]) {
    // A CLI's own home (~/.gemini) holds the files one level up from how the volume keeps them.
    const candidates = [join(from, file), ...(file.startsWith(".gemini/") ? [join(from, file.slice(".gemini/".length))] : [])];
    for (const source of candidates) {
      if (!(await isFile(source))) continue;
      await mkdir(dirname(join(to, file)), { recursive: true, mode: 0o700 });
      await copyFile(source, join(to, file));
      await chmod(join(to, file), 0o600);
      copied.push(file);
      break;
    }
  }
  return copied;
}

async function storeSecret(adapter: RuntimeAdapter, runtime: Runtime, dir: string, secret: string, isToken: boolean): Promise<void> {
  if (runtime === "codex") {
    // The CLI's own login writes auth.json the way it expects it.
    await execa(adapter.bin, ["login", "--with-api-key"], { env: { PATH: process.env.PATH ?? "", CODEX_HOME: dir, HOME: dir }, input: `${secret}\n` });
    return;
  }
  await writeFile(join(dir, isToken ? "oauth-token" : "api-key"), `${secret}\n`, { mode: 0o600 });
  if (runtime === "gemini") await setGeminiAuthType(dir, "gemini-api-key");
}

async function setGeminiAuthType(dir: string, type: string): Promise<void> {
  const path = join(dir, ".gemini", "settings.json");
  let settings: { security?: { auth?: Record<string, unknown> } } = {};
  try {
    settings = JSON.parse(await readFile(path, "utf8")) as typeof settings;
  } catch {
    settings = {};
  }
  settings.security = { ...settings.security, auth: { ...settings.security?.auth, selectedType: type } };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, JSON.stringify(settings, null, 2), { mode: 0o600 });
}

/** The CLI's own login, on this terminal: device code for codex (works headless), etc. */
async function interactiveLogin(adapter: RuntimeAdapter, runtime: Runtime, dir: string): Promise<number> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", TERM: process.env.TERM ?? "xterm" };
  let args: string[];
  if (runtime === "codex") {
    Object.assign(env, { CODEX_HOME: dir, HOME: dir });
    args = ["login", "--device-auth"];
  } else if (runtime === "claude") {
    Object.assign(env, { CLAUDE_CONFIG_DIR: dir, HOME: dir });
    process.stderr.write(
      "Runs `claude setup-token`: a long-lived token that never refreshes, so one login serves many jobs.\n" +
        "When it prints the token, store it with:  <paste> | moonmind auth claude --token\n",
    );
    args = ["setup-token"];
  } else {
    Object.assign(env, { GEMINI_CLI_HOME: dir, HOME: dir, GEMINI_CLI_NO_RELAUNCH: "true" });
    await setGeminiAuthType(dir, "oauth-personal");
    process.stderr.write("Starts gemini to sign in with Google; type /quit once it says you are signed in.\n");
    args = [];
  }
  return new Promise((done) => {
    const child = spawn(adapter.bin, args, { env, stdio: "inherit", cwd: dir });
    child.on("exit", (code) => done(code ?? 1));
    child.on("error", () => done(127));
  });
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

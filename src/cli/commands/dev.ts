/**
 * `moonmind dev` (= `npm start`): the whole stack on one machine — a local nats-server (unless
 * NATS_URL names one), intake, and one worker per runtime, each on its login volume under
 * ./var/auth/<runtime>. Workers start paused where a runtime is not logged in yet, and resume
 * by themselves once it is. Prints where to look; Ctrl-C stops everything in order.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { loadConfig } from "../../config.js";
import { UsageError } from "../../errors.js";
import { PROJECT_ROOT } from "../../paths.js";
import { RUNTIMES } from "../../schemas/runtime.js";
import type { CliContext } from "../context.js";
import { startLocalStack, type WorkerSpec } from "../local-stack.js";

export interface DevOptions {
  standIn?: boolean;
}

export const STAND_IN_CODEX = join(PROJECT_ROOT, "tests/fixtures/fake-codex.mjs");

/** Each runtime's volume: the worker's variable when set, else ./var/auth/<runtime>. */
export function devVolumeEnv(dataDir: string, env = process.env): Record<string, string> {
  return {
    CODEX_VOLUME_PATH: env.CODEX_VOLUME_PATH ?? join(dataDir, "auth/codex"),
    CLAUDE_VOLUME_PATH: env.CLAUDE_VOLUME_PATH ?? join(dataDir, "auth/claude"),
    GEMINI_HOME: env.GEMINI_HOME ?? join(dataDir, "auth/gemini"),
  };
}

/** The stand-in stack keeps a store of its own, so it never takes the real CLIs' queued jobs. */
export const STAND_IN_DATA_DIR = "stand-in";

export async function devCommand(ctx: CliContext, opts: DevOptions): Promise<number> {
  if (opts.standIn && ctx.config.env.NATS_URL) {
    throw new UsageError("--stand-in runs only on a nats-server of its own: it would take the real codex jobs queued on NATS_URL", {
      remedy: "unset NATS_URL for npm start -- --stand-in",
    });
  }
  const baseDir = resolve(ctx.config.env.MOONMIND_DATA_DIR);
  const dataDir = opts.standIn ? join(baseDir, STAND_IN_DATA_DIR) : baseDir;
  const config = opts.standIn ? loadConfig({ ...process.env, MOONMIND_DATA_DIR: dataDir }) : ctx.config;
  const volumes = devVolumeEnv(dataDir);
  for (const dir of Object.values(volumes)) await mkdir(dir, { recursive: true, mode: 0o700 });
  const workers: WorkerSpec[] = RUNTIMES.map((runtime) => ({
    name: `worker-${runtime}`,
    env: { MOONMIND_WORKER_RUNTIMES: runtime, MOONMIND_WORKER_ID: `dev-${runtime}` },
  }));
  if (opts.standIn) {
    // A scripted stand-in for the codex CLI with a login of its own: for trying the stack without an account.
    const volume = join(dataDir, "auth/stand-in");
    await mkdir(volume, { recursive: true, mode: 0o700 });
    await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
    Object.assign(workers[0]!.env, { MOONMIND_CODEX_BIN: STAND_IN_CODEX, CODEX_VOLUME_PATH: volume, CODEX_VOLUME_NAME: "stand-in" });
  }
  const stack = await startLocalStack(config, {
    baseEnv: {
      ...process.env,
      ...volumes,
      MOONMIND_DATA_DIR: dataDir,
      MOONMIND_ALLOW_LOCAL_REPOS: process.env.MOONMIND_ALLOW_LOCAL_REPOS ?? "true",
      MOONMIND_STARTUP_STRICT: process.env.MOONMIND_STARTUP_STRICT ?? "false",
    },
    workers,
  });
  ctx.out(banner(stack.url, stack.vizUrl, stack.ownServer, stack.report.created.length, opts.standIn === true, volumes, opts.standIn ? dataDir : undefined));
  stack.onChildEvent((e) => {
    if (e.kind === "crashed") ctx.err(`moonmind dev: ${e.name} exited (${e.why}); restarting it in ${Math.round(e.restartInMs / 1000)} s`);
    else if (e.kind === "restarted") ctx.err(`moonmind dev: ${e.name} restarted`);
    else ctx.err(`moonmind dev: ${e.name} stopped: ${e.why}`);
  });

  return new Promise<number>((done) => {
    let signals = 0;
    const stop = (why: string) => {
      if (++signals > 1) {
        ctx.err("moonmind dev: still stopping (running jobs are being handed back); the actors are killed after the stop grace");
        return;
      }
      ctx.err(`moonmind dev: ${why}; stopping`);
      void stack.stop().then(() => {
        ctx.err("moonmind dev: stopped");
        done(0);
      });
    };
    process.on("SIGINT", () => stop("interrupted"));
    process.on("SIGTERM", () => stop("terminated"));
    process.on("SIGHUP", () => stop("the terminal closed"));
  });
}

function banner(
  url: string,
  vizUrl: string | undefined,
  ownServer: boolean,
  created: number,
  standIn: boolean,
  volumes: Record<string, string>,
  standInDir: string | undefined,
): string {
  const here = process.cwd();
  const prefix = standInDir ? `MOONMIND_DATA_DIR=${relative(here, standInDir) || "."} ` : "";
  return `
MoonMind Runtime is up${ownServer ? " with a local nats-server" : ""} (${created} streams, buckets and consumers created).

  live view:     ${vizUrl ?? "did not start (its error is above; MOONMIND_VIZ_PORT picks another port)"}
  export NATS_URL=${url}      (for other terminals; the CLI also finds it from any directory of the project)
  workers dev-codex, dev-claude, dev-gemini: each pauses until its runtime is logged in
  login volumes: codex ${standIn ? "(scripted stand-in, no account needed)" : volumes.CODEX_VOLUME_PATH}
                 claude ${volumes.CLAUDE_VOLUME_PATH}
                 gemini ${volumes.GEMINI_HOME}
  log in with:   npx moonmind auth codex|claude|gemini   (or tools/auth-<runtime>-volume.sh)

From another terminal in ${here}:
  ${prefix}npx moonmind submit --repository "$PWD" --instructions 'write NOTES.md: hello' --wait
  ${prefix}npx moonmind watch --workers
  nats --server ${url} pub jobs.submit '{"repository":"${here}","instructions":"say hello"}'
  nats --server ${url} sub 'status.>'

Ctrl-C stops everything.
`;
}

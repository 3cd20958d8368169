/**
 * `moonmind dev` (= `npm start`): the whole stack on one machine — a local nats-server (unless
 * NATS_URL names one), intake, and one worker per runtime, each on its login volume under
 * ./var/auth/<runtime>. Workers start paused where a runtime is not logged in yet, and resume
 * by themselves once it is. Prints where to look; Ctrl-C stops everything in order.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PROJECT_ROOT } from "../../nats/server.js";
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

export async function devCommand(ctx: CliContext, opts: DevOptions): Promise<number> {
  const dataDir = resolve(ctx.config.env.MOONMIND_DATA_DIR);
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
  const stack = await startLocalStack(ctx.config, {
    baseEnv: {
      ...process.env,
      ...volumes,
      MOONMIND_ALLOW_LOCAL_REPOS: process.env.MOONMIND_ALLOW_LOCAL_REPOS ?? "true",
      MOONMIND_STARTUP_STRICT: process.env.MOONMIND_STARTUP_STRICT ?? "false",
    },
    workers,
  });
  ctx.out(banner(stack.url, stack.ownServer, stack.report.created.length, opts.standIn === true, volumes));

  return new Promise<number>((done) => {
    const stop = (code: number, why: string) => {
      ctx.err(`moonmind dev: ${why}; stopping`);
      void stack.stop().then(() => {
        ctx.err("moonmind dev: stopped");
        done(code);
      });
    };
    stack.onChildExit((name, why) => stop(1, `${name} exited (${why})`));
    process.once("SIGINT", () => stop(0, "interrupted"));
    process.once("SIGTERM", () => stop(0, "terminated"));
  });
}

function banner(url: string, ownServer: boolean, created: number, standIn: boolean, volumes: Record<string, string>): string {
  const here = process.cwd();
  return `
MoonMind Runtime is up${ownServer ? " with a local nats-server" : ""} (${created} streams, buckets and consumers created).

  NATS_URL=${url}
  workers dev-codex, dev-claude, dev-gemini: each pauses until its runtime is logged in
  login volumes: codex ${standIn ? "(scripted stand-in, no account needed)" : volumes.CODEX_VOLUME_PATH}
                 claude ${volumes.CLAUDE_VOLUME_PATH}
                 gemini ${volumes.GEMINI_HOME}
  log in with:   npx moonmind auth codex|claude|gemini   (or tools/auth-<runtime>-volume.sh)

From another terminal in ${here}:
  npx moonmind submit --repository "$PWD" --instructions 'write NOTES.md: hello' --wait
  npx moonmind watch --workers
  nats --server ${url} pub jobs.submit '{"repository":"${here}","instructions":"say hello"}'
  nats --server ${url} sub 'status.>'

Ctrl-C stops everything.
`;
}

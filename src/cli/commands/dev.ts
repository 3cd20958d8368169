/**
 * `moonmind dev` (= `npm start`): the whole stack on one machine. Starts nats-server (unless
 * NATS_URL names one), provisions, runs intake and one worker as child processes, prints where
 * to look, and stops everything in order on Ctrl-C.
 */
import type { ChildProcess } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { connectNats } from "../../nats/connect.js";
import { provision } from "../../nats/provision.js";
import { PROJECT_ROOT, startNatsServer, type NatsServer } from "../../nats/server.js";
import { devUrlFile } from "../../nats/url.js";
import type { CliContext } from "../context.js";
import { spawnActor, type ActorName } from "./actor.js";

export interface DevOptions {
  standIn?: boolean;
}

export const STAND_IN_CODEX = join(PROJECT_ROOT, "tests/fixtures/fake-codex.mjs");

export async function devCommand(ctx: CliContext, opts: DevOptions): Promise<number> {
  const env = ctx.config.env;
  const dataDir = resolve(env.MOONMIND_DATA_DIR);
  await mkdir(dataDir, { recursive: true });

  let server: NatsServer | undefined;
  let url = env.NATS_URL;
  if (!url) {
    server = await startNatsServer({ storeDir: join(dataDir, "nats"), logFile: join(dataDir, "nats-server.log") });
    url = server.url;
    await writeFile(devUrlFile(ctx.config), `${url}\n`);
  }
  const nc = await connectNats({ servers: url, name: "moonmind-dev" });
  const report = await provision(nc, ctx.config);
  await nc.close();

  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NATS_URL: url,
    MOONMIND_DATA_DIR: dataDir,
    MOONMIND_ALLOW_LOCAL_REPOS: process.env.MOONMIND_ALLOW_LOCAL_REPOS ?? "true",
    MOONMIND_WORKER_ID: process.env.MOONMIND_WORKER_ID ?? "dev-worker-1",
    CODEX_VOLUME_PATH: process.env.CODEX_VOLUME_PATH ?? join(dataDir, "auth/codex"),
  };
  if (opts.standIn) {
    // A scripted stand-in for the codex CLI with a login of its own: for trying the stack without an account.
    const volume = join(dataDir, "auth/stand-in");
    await mkdir(volume, { recursive: true });
    await writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
    Object.assign(childEnv, { MOONMIND_CODEX_BIN: STAND_IN_CODEX, CODEX_VOLUME_PATH: volume, CODEX_VOLUME_NAME: "stand-in" });
  }
  await mkdir(childEnv.CODEX_VOLUME_PATH!, { recursive: true });

  const children = new Map<ActorName, ChildProcess>();
  for (const name of ["intake", "worker"] as const) children.set(name, spawnActor(name, childEnv, { detached: true }));

  ctx.out(banner(url, server !== undefined, report.created.length, opts.standIn === true, childEnv));

  return new Promise<number>((done) => {
    let stopping = false;
    const stop = async (code: number, why: string) => {
      if (stopping) return;
      stopping = true;
      ctx.err(`moonmind dev: ${why}; stopping`);
      await Promise.all(
        [...children.values()].map(
          (child) =>
            new Promise<void>((r) => {
              if (child.exitCode !== null || child.signalCode !== null) return r();
              child.once("exit", () => r());
              child.kill("SIGTERM");
            }),
        ),
      );
      if (server) {
        await server.stop();
        await rm(devUrlFile(ctx.config), { force: true });
      }
      ctx.err("moonmind dev: stopped");
      done(code);
    };
    for (const [name, child] of children) {
      child.on("exit", (code, signal) => void stop(1, `${name} exited (${signal ?? `code ${code}`})`));
    }
    process.once("SIGINT", () => void stop(0, "interrupted"));
    process.once("SIGTERM", () => void stop(0, "terminated"));
  });
}

function banner(url: string, ownServer: boolean, created: number, standIn: boolean, env: NodeJS.ProcessEnv): string {
  const here = process.cwd();
  return `
MoonMind Runtime is up${ownServer ? " with a local nats-server" : ""} (${created} streams, buckets and consumers created).

  NATS_URL=${url}
  worker ${env.MOONMIND_WORKER_ID}: codex via ${env.MOONMIND_CODEX_BIN ?? "codex"}${standIn ? " (scripted stand-in: no account needed)" : ""}
  codex login volume: ${env.CODEX_VOLUME_PATH}${standIn ? "" : " (log in with tools/auth-codex-volume.sh --local <that dir>)"}

From another terminal in ${here}:
  npx moonmind submit --repository "$PWD" --instructions 'write NOTES.md: hello' --wait
  npx moonmind watch
  nats --server ${url} pub jobs.submit '{"repository":"${here}","instructions":"say hello"}'
  nats --server ${url} sub 'status.>'

Ctrl-C stops everything.
`;
}

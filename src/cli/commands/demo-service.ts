/**
 * `moonmind demo-service endpoint|logins|git`: one piece of the offline demo on its own, as the
 * compose file's `demo` profile runs it in a container of its own.
 *   endpoint  the scripted stand-in for the vendors' model APIs (src/demo/model-server) on --port
 *   logins    the demo's logins on the mounted volumes, pointed at --model-url (codex's own login is
 *             left to tools/auth-codex-volume.sh, as a real one would be)
 *   git       a git daemon serving a sample repository as git://<host>/sample.git
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { UsageError } from "../../errors.js";
import { startModelServer } from "../../demo/model-server/index.js";
import { sampleRepository } from "../../demo/sample-repo.js";
import { writeDemoLogins } from "../../demo/volumes.js";
import type { CliContext } from "../context.js";

export interface DemoServiceOptions {
  port?: string;
  host?: string;
  modelUrl?: string;
  dir?: string;
}

export async function demoServiceCommand(ctx: CliContext, part: string, opts: DemoServiceOptions): Promise<number> {
  switch (part) {
    case "endpoint":
      return endpoint(ctx, opts);
    case "logins":
      return logins(ctx, opts);
    case "git":
      return gitDaemon(ctx, opts);
    default:
      throw new UsageError(`moonmind demo-service: no part '${part}'; one of endpoint, logins, git`);
  }
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
}

async function endpoint(ctx: CliContext, opts: DemoServiceOptions): Promise<number> {
  const server = await startModelServer({ host: opts.host ?? "0.0.0.0", port: Number(opts.port ?? 8090) });
  ctx.out(`scripted stand-in for the vendors' model APIs on ${server.url.replace("127.0.0.1", opts.host ?? "0.0.0.0")} (not a model: it follows the directives in each prompt)`);
  await untilSignal();
  await server.stop();
  return 0;
}

async function logins(ctx: CliContext, opts: DemoServiceOptions): Promise<number> {
  if (!opts.modelUrl) throw new UsageError("moonmind demo-service logins: --model-url is required (e.g. http://model:8090)");
  const env = ctx.config.env;
  await writeDemoLogins({ codex: env.CODEX_VOLUME_PATH, claude: env.CLAUDE_VOLUME_PATH, gemini: env.GEMINI_HOME }, opts.modelUrl, { codexLogin: false });
  ctx.out(`demo logins written (endpoint ${opts.modelUrl}): codex's endpoint on ${env.CODEX_VOLUME_PATH}, claude's and gemini's keys; log codex in with tools/auth-codex-volume.sh --compose --api-key`);
  return 0;
}

async function gitDaemon(ctx: CliContext, opts: DemoServiceOptions): Promise<number> {
  const dir = opts.dir ?? join(ctx.config.env.MOONMIND_DATA_DIR, "git");
  const bare = join(dir, "sample.git");
  if (!existsSync(bare)) {
    const work = join(dir, ".sample-work");
    await rm(work, { recursive: true, force: true });
    await sampleRepository(work);
    await mkdir(dir, { recursive: true });
    await execa("git", ["clone", "-q", "--bare", work, bare]);
    await rm(work, { recursive: true, force: true });
  }
  const port = opts.port ?? "9418";
  const daemon = execa("git", ["daemon", "--reuseaddr", "--export-all", `--base-path=${dir}`, `--port=${port}`, `--listen=${opts.host ?? "0.0.0.0"}`, dir], {
    stdio: "inherit",
    reject: false,
  });
  ctx.out(`serving git://<this host>:${port}/sample.git from ${dir}`);
  const ended = await Promise.race([daemon.then(() => "exited" as const), untilSignal().then(() => "signal" as const)]);
  if (ended === "signal") daemon.kill("SIGTERM");
  const result = await daemon;
  return ended === "signal" ? 0 : (result.exitCode ?? 1);
}

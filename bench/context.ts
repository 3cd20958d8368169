/** What every figure group of `npm run bench` is given: the server, the environment, the mode. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { Intake } from "../actors/intake/intake.js";
import { loadConfig } from "../src/config.js";
import type { Logger } from "../src/logger.js";
import { connectNats } from "../src/nats/connect.js";
import { provision } from "../src/nats/provision.js";
import type { Progress } from "./progress.js";

export const FAKE_CODEX = join(import.meta.dirname, "../tests/fixtures/fake-codex.mjs");

export interface BenchContext {
  url: string;
  /** The environment of every actor: server, stand-in agent, its login volume, local repositories. */
  env: Record<string, string>;
  /** A scratch directory removed at the end. */
  dir: string;
  /** A local git repository the jobs check out. */
  repo: string;
  /** The login volume (holds a stand-in auth.json). */
  volume: string;
  serverPid: number;
  quick: boolean;
  log: Logger;
  progress: Progress;
}

/** An intake replica in this process for `shards` codex shards, the streams provisioned for it. */
export async function startIntake(ctx: BenchContext, nc: NatsConnection, shards: number, name: string): Promise<Intake> {
  const config = loadConfig({ ...ctx.env, MOONMIND_CODEX_SHARDS: String(shards) });
  await provision(nc, config);
  const intake = new Intake(await connectNats({ servers: ctx.url, name }), config, ctx.log);
  await intake.start();
  return intake;
}

/** The environment of a worker process with its own data directory. */
export async function workerEnv(ctx: BenchContext, id: string, more: Record<string, string> = {}): Promise<Record<string, string>> {
  const dataDir = join(ctx.dir, "workers", id);
  await mkdir(dataDir, { recursive: true });
  return { ...ctx.env, MOONMIND_DATA_DIR: dataDir, ...more };
}

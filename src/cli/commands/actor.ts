/**
 * `moonmind intake|ops|worker`: each actor runs alone, as compose runs them — in this very process,
 * so a signal (or a kill) of the command is one of the actor. `moonmind dev` starts them as
 * child processes instead, each watching its launcher through a stdin pipe.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { STOP_WITH_PARENT_ENV } from "../../actor-host.js";
import { COMPILED, PROJECT_ROOT } from "../../paths.js";

export const ACTORS = ["intake", "ops", "worker", "viz"] as const;
export type ActorName = (typeof ACTORS)[number];

/** The actor's entry module: compiled under dist/ when this code is, else its source. */
/**
 * Node flags every actor process runs with: 2 MiB semi-spaces keep an idle actor's young
 * generation from staying at the size its start-up grew it to (~12 MB resident; the scavenges
 * it adds are sub-millisecond). Also in bin.mjs's shebang and the npm scripts.
 */
export const ACTOR_NODE_FLAGS = ["--max-semi-space-size=2"];

export function actorEntry(name: ActorName): string {
  return COMPILED ? join(PROJECT_ROOT, "dist", "actors", name, "main.js") : join(PROJECT_ROOT, "actors", name, "main.ts");
}

/**
 * Starts an actor process; `env` is its whole environment. Its stdin is a pipe from this
 * process: when this process ends, however it ends, the actor stops too.
 */
export function spawnActor(
  name: ActorName,
  env: NodeJS.ProcessEnv,
  opts: { stdio?: "inherit" | "pipe"; detached?: boolean } = {},
): ChildProcess {
  const stdio = opts.stdio ?? "inherit";
  // Compiled JS runs as it is; sources need the loader, by absolute URL so any working directory works.
  const loader = COMPILED ? [] : ["--import", import.meta.resolve("tsx")];
  const args = [...ACTOR_NODE_FLAGS, ...loader, actorEntry(name)];
  return spawn(process.execPath, args, {
    env: { ...env, [STOP_WITH_PARENT_ENV]: "1" },
    stdio: ["pipe", stdio, stdio],
    detached: opts.detached ?? false,
  });
}

/** Runs the actor in this process (its entry module settles the exit code when it stops). */
export async function runActorCommand(name: ActorName): Promise<number> {
  // By path, not by static import: the library never depends on the actors that use it.
  await import(pathToFileURL(actorEntry(name)).href);
  return typeof process.exitCode === "number" ? process.exitCode : 0;
}

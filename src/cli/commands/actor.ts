/**
 * `moonmind intake|worker`: each actor runs alone in its own process, as compose runs them.
 * The CLI starts the actor's entry point and passes signals through; the actor's exit code is ours.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../nats/server.js";

export const ACTORS = ["intake", "worker"] as const;
export type ActorName = (typeof ACTORS)[number];

export function actorEntry(name: ActorName): string {
  return join(PROJECT_ROOT, "actors", name, "main.ts");
}

/** Starts an actor process; `env` is its whole environment. */
export function spawnActor(
  name: ActorName,
  env: NodeJS.ProcessEnv,
  opts: { stdio?: "inherit" | "pipe"; detached?: boolean } = {},
): ChildProcess {
  const stdio = opts.stdio ?? "inherit";
  // The loader by absolute URL, so the command works from any working directory.
  return spawn(process.execPath, ["--import", import.meta.resolve("tsx"), actorEntry(name)], {
    env,
    stdio: ["ignore", stdio, stdio],
    detached: opts.detached ?? false,
  });
}

export function runActorCommand(name: ActorName): Promise<number> {
  const child = spawnActor(name, process.env);
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGTERM", forward);
  process.on("SIGINT", forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      process.off("SIGTERM", forward);
      process.off("SIGINT", forward);
      resolve(code ?? (signal ? 128 + (signal === "SIGKILL" ? 9 : 15) : 1));
    });
  });
}

/**
 * Docker for the compose tests: the compose command (the docker CLI's plugin, or the plugin
 * binary tools/docker-engine.sh put under .tools/), and whether an engine answers on DOCKER_HOST.
 * `.ci/run` always starts one (tools/docker-engine.sh); elsewhere the engine test runs when one is there.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../src/paths.js";

const LOCAL_COMPOSE = join(PROJECT_ROOT, ".tools/docker/cli-plugins/docker-compose");

function succeeds(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** argv prefix that runs compose, or undefined when there is none on this machine. */
export function composeCommand(): string[] | undefined {
  if (succeeds("docker", ["compose", "version"])) return ["docker", "compose"];
  if (existsSync(LOCAL_COMPOSE) && succeeds(LOCAL_COMPOSE, ["version"])) return [LOCAL_COMPOSE];
  return undefined;
}

export function engineReachable(): boolean {
  return succeeds("docker", ["info", "--format", "{{.ServerVersion}}"]);
}

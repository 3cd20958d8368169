/** What CLI commands share: the configuration and, when a command needs it, a NATS connection. */
import type { NatsConnection } from "@nats-io/nats-core";
import { loadConfig, type Config } from "../config.js";
import { connectNats } from "../nats/connect.js";
import { resolveNatsUrl } from "../nats/url.js";

export interface CliContext {
  config: Config;
  connect(): Promise<NatsConnection>;
  out(line: string): void;
  err(line: string): void;
}

export function cliContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  const config = loadConfig(env);
  return {
    config,
    async connect() {
      const { url } = resolveNatsUrl(config);
      return connectNats({ servers: url, name: "moonmind-cli", credsFile: config.env.NATS_CREDS, timeoutMs: 5_000 });
    },
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  };
}

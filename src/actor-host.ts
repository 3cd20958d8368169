/**
 * What every actor process shares: config, logger, connection, provisioning, signal handling
 * and exit codes. The actor itself only says how to start and stop.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { loadConfig, type Config } from "./config.js";
import { EXIT_CODES, MoonmindError } from "./errors.js";
import { createLogger, type Logger } from "./logger.js";
import { connectNats } from "./nats/connect.js";
import { provision } from "./nats/provision.js";
import { resolveNatsUrl } from "./nats/url.js";

export interface Stoppable {
  stop(reason?: string): Promise<void>;
}

export interface ActorContext {
  config: Config;
  log: Logger;
  nc: NatsConnection;
}

export async function hostActor(
  name: string,
  start: (ctx: ActorContext) => Promise<Stoppable>,
  source: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  let log = createLogger({ actor: name });
  try {
    const config = loadConfig(source);
    const instance = name === "worker" ? config.workerId : `${name}-${process.pid}`;
    log = createLogger({ actor: name, instance }, config.env.MOONMIND_LOG_LEVEL);
    const { url, source: from } = resolveNatsUrl(config);
    const nc = await connectNats({ servers: url, name: `moonmind-${name}-${instance}`, credsFile: config.env.NATS_CREDS });
    log.info({ url, from }, "connected to NATS");
    const report = await provision(nc, config);
    if (report.created.length + report.updated.length > 0) log.info(report, "provisioned");
    const actor = await start({ config, log, nc });

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn({ signal }, "second signal: exiting now");
        process.exit(EXIT_CODES.failure);
      }
      log.info({ signal }, "stopping");
      actor.stop(`received ${signal}`).then(
        () => process.exit(EXIT_CODES.ok),
        (err: unknown) => {
          log.error({ err }, "stop failed");
          process.exit(EXIT_CODES.failure);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    nc.closed().then((err) => {
      if (err) log.error({ err }, "NATS connection closed with an error");
    });
  } catch (err) {
    const e = err as MoonmindError & { exitCode?: number };
    log.fatal({ err: { message: e.message, remedy: e.remedy } }, `${name} could not start`);
    process.stderr.write(`moonmind ${name}: ${e.message}${e.remedy ? `\n  fix: ${e.remedy}` : ""}\n`);
    log.flush?.();
    process.exit(e.exitCode ?? EXIT_CODES.failure);
  }
}

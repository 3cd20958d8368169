/**
 * What every actor process shares: config, logger, connection, provisioning, signal handling
 * and exit codes. The actor itself only says how to start and stop.
 *
 * Signals are handled from the moment the actor exists, so a Ctrl-C during a start-up that
 * takes minutes (login checks) is an orderly stop. The returned promise settles with the exit
 * code once the actor has stopped; nothing here calls process.exit but a second signal.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { loadConfig, type Config } from "./config.js";
import { EXIT_CODES, MoonmindError } from "./errors.js";
import { createLogger, type Logger } from "./logger.js";
import { connectPatiently, NatsUnreachableError, whileJetStreamAway } from "./nats/connect.js";
import { provision } from "./nats/provision.js";
import { startHealth, sweepHealth, type HealthWriter } from "./health.js";
import { COMPILED } from "./paths.js";
import { displayUrl, resolveNatsUrl } from "./nats/url.js";

export interface HostedActor {
  start(): Promise<void>;
  stop(reason?: string): Promise<void>;
  /** Settles once the actor has stopped, whoever stopped it (a signal, a drain request). */
  stopped(): Promise<void>;
}

export interface ActorContext {
  config: Config;
  log: Logger;
  nc: NatsConnection;
}

/** Set by a launcher (moonmind dev) that gives its actors a stdin pipe: when it closes, the launcher is gone. */
export const STOP_WITH_PARENT_ENV = "MOONMIND_STOP_WITH_PARENT";

export async function hostActor(
  name: string,
  create: (ctx: ActorContext) => HostedActor,
  source: NodeJS.ProcessEnv = process.env,
  /** `provision: false` for a reader (the live view), whose role may not create streams. */
  opts: { provision?: boolean } = {},
): Promise<number> {
  let log = createLogger({ actor: name });
  let actor: HostedActor | undefined;
  let health: HealthWriter | undefined;
  let stopped: Promise<number> | undefined;
  let signals = 0;
  const starting = new AbortController();
  const stop = (why: string): Promise<number> => {
    starting.abort(); // a start-up still waiting for the server gives up
    // Unhealthy from the first moment of a stop: the file goes before the actor does.
    return (stopped ??= (health?.stop() ?? Promise.resolve()).then(() => actor?.stop(why)).then(
      () => EXIT_CODES.ok,
      (err: unknown) => {
        log.error({ err }, "stop failed");
        return EXIT_CODES.failure;
      },
    ));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(EXIT_CODES.failure);
    }
    log.info({ signal }, "stopping");
    void stop(`received ${signal}`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  if (source[STOP_WITH_PARENT_ENV] === "1") {
    // The launcher died (even by SIGKILL): its end of our stdin closed. Stop rather than run on alone.
    process.stdin.on("end", () => void stop("the launcher is gone")).on("error", () => void stop("the launcher is gone"));
    process.stdin.resume();
  }
  try {
    const config = loadConfig(source);
    const instance = name === "worker" ? config.workerId : `${name}-${process.pid}`;
    log = createLogger({ actor: name, instance }, config.env.MOONMIND_LOG_LEVEL);
    const { url, source: from } = resolveNatsUrl(config);
    const nc = await connectPatiently({
      servers: url,
      name: `moonmind-${name}-${instance}`,
      credsFile: config.env.NATS_CREDS,
      waitMs: config.env.MOONMIND_CONNECT_WAIT_MS,
      signal: starting.signal,
      onRetry: (attempt, err) => log.warn({ url: displayUrl(url), attempt, err: err.message }, "NATS is not reachable yet: waiting for it"),
    });
    log.info({ url: displayUrl(url), from, build: COMPILED ? "compiled" : "source" }, "connected to NATS");
    // JetStream may be electing its leaders (a node of the cluster just went): waited for as the server is.
    if (opts.provision !== false) {
      const report = await whileJetStreamAway("provisioning", () => provision(nc, config), {
        waitMs: config.env.MOONMIND_CONNECT_WAIT_MS,
        signal: starting.signal,
        log,
      });
      if (report.created.length + report.updated.length > 0) log.info(report, "provisioned");
    }
    nc.closed().then((err) => {
      if (err) log.error({ err }, "NATS connection closed with an error");
    });
    actor = create({ config, log, nc });
    if (stopped) await nc.close();
    else {
      await actor.start();
      await sweepHealth(config.env.MOONMIND_DATA_DIR);
      if (!stopped) health = startHealth({ nc, dataDir: config.env.MOONMIND_DATA_DIR, actor: name, instance, log });
    }
  } catch (err) {
    // A signal while still waiting for the server is an orderly stop, not a failed start.
    if (stopped && err instanceof NatsUnreachableError) return finish(await stopped);
    await stop("start-up failed");
    const e = err as MoonmindError & { exitCode?: number };
    log.fatal({ err: { message: e.message, remedy: e.remedy } }, `${name} could not start`);
    process.stderr.write(`moonmind ${name}: ${e.message}${e.remedy ? `\n  fix: ${e.remedy}` : ""}\n`);
    log.flush?.();
    return finish(e.exitCode ?? EXIT_CODES.failure);
  }
  // Served until a signal, a drain request or the launcher's end stops it.
  const code = await (stopped ?? actor.stopped().then(() => stop("stopped")));
  return finish(code);

  function finish(code: number): number {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    if (source[STOP_WITH_PARENT_ENV] === "1") process.stdin.destroy();
    return code;
  }
}

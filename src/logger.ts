/**
 * pino to stderr (stdout is for data); one child per actor instance. On a terminal the lines
 * are pretty-printed (pino-pretty, in this thread; colour unless NO_COLOR); anywhere else they
 * stay one JSON object per line, for log collectors.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import { PinoPretty } from "pino-pretty";

export type { Logger };

export function createLogger(bindings: { actor: string; instance?: string }, level = "info"): Logger {
  return pino({ level, base: { ...bindings } }, logDestination());
}

function logDestination(env: NodeJS.ProcessEnv = process.env): DestinationStream {
  if (process.stderr.isTTY !== true || env.TERM === "dumb") return pino.destination({ fd: 2, sync: false });
  return PinoPretty({
    destination: 2,
    sync: true,
    colorize: !env.NO_COLOR,
    translateTime: "HH:MM:ss.l",
    ignore: "pid,hostname,actor,instance",
    messageFormat: (log, messageKey) => {
      const who = typeof log.actor === "string" ? `${log.actor}${typeof log.instance === "string" ? `/${log.instance}` : ""}: ` : "";
      return `${who}${String(log[messageKey] ?? "")}`;
    },
  });
}

/** pino to stderr (stdout is for data); one child per actor instance. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(bindings: { actor: string; instance?: string }, level = "info"): Logger {
  return pino({ level, base: { ...bindings } }, pino.destination({ fd: 2, sync: false }));
}

/**
 * `@nats-io/services` 3.0.0-25 counts an error (num_errors, last_error in `nats micro stats`) only
 * when a handler throws synchronously; `respondError` and a rejected promise go uncounted. An async
 * failure is counted here through the endpoint's stats object, which the library keeps on the
 * service's `handlers`. Held by tests/integration/ops-errors.test.ts; if a release moves it, this
 * logs once and the reply still carries the error.
 */
import type { Service } from "@nats-io/services";
import type { Logger } from "../../src/logger.js";

interface EndpointInternals {
  name: string;
  stats?: { countError?: (err: Error) => void };
}

export function errorCounter(service: Service, log: Logger): (endpoint: string, err: Error) => void {
  let warned = false;
  return (endpoint, err) => {
    const handlers = (service as unknown as { handlers?: EndpointInternals[] }).handlers;
    const count = handlers?.find((h) => h.name === endpoint)?.stats?.countError;
    if (typeof count === "function") count.call(handlers!.find((h) => h.name === endpoint)!.stats, err);
    else if (!warned) {
      warned = true;
      log.warn({ endpoint }, "this @nats-io/services release keeps endpoint stats elsewhere; async errors are not counted in micro stats");
    }
  };
}

/**
 * The worker's control surface on the NATS services framework, so `nats micro ls|info|stats`
 * lists every worker: `worker.<id>.preflight` re-checks its logins now (an operator who fixed a
 * login asks for this, and the shards resume), `worker.<id>.drain` stops it gracefully.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Svcm, type Service } from "@nats-io/services";
import type { Logger } from "../../src/logger.js";
import { SERVICES } from "../../src/subjects.js";
import { VERSION } from "../../src/version.js";
import type { Login } from "./logins.js";

export interface ControlTarget {
  id: string;
  runtimes: string[];
  logins(): Login[];
  stop(reason: string): Promise<void>;
}

export interface PreflightReply {
  workerId: string;
  results: Array<{ login: string; runtime: string; volume: string; state: string; status: string; message: string; checkedAt: string }>;
}

export async function startControl(nc: NatsConnection, target: ControlTarget, log: Logger): Promise<Service> {
  const service = await new Svcm(nc).add({
    name: SERVICES.worker,
    version: VERSION,
    description: "MoonMind worker: runs agent CLI jobs",
    metadata: { worker_id: target.id, runtimes: target.runtimes.join(",") },
    queue: "",
  });
  const group = service.addGroup(`worker.${target.id}`, "");

  group.addEndpoint("preflight", {
    handler: (_err, msg) => {
      let body: { runtime?: string; force?: boolean } = {};
      try {
        body = msg.data.length > 0 ? (msg.json() as typeof body) : {};
      } catch {
        msg.respondError(400, "body must be JSON like {\"runtime\":\"codex\"} or empty");
        return;
      }
      const logins = target.logins().filter((l) => !body.runtime || l.adapter.runtime === body.runtime);
      // An operator asking believes a pass: it lifts a job's evidence of an expired login.
      Promise.all(
        logins.map(async (l) => {
          const r = await l.recheck(body.force ?? true);
          return {
            login: l.key,
            runtime: l.adapter.runtime,
            volume: l.volume.name,
            state: String(l.auth.getSnapshot().value),
            status: r.status,
            message: r.message,
            checkedAt: r.checkedAt,
          };
        }),
      ).then(
        (results) => msg.respond(JSON.stringify({ workerId: target.id, results } satisfies PreflightReply)),
        (err: unknown) => msg.respondError(500, (err as Error).message),
      );
    },
    metadata: { description: "re-check this worker's logins now; body {runtime?, force?}" },
  });

  group.addEndpoint("drain", {
    handler: (_err, msg) => {
      msg.respond(JSON.stringify({ workerId: target.id, draining: true }));
      target.stop("drain requested").catch((err: unknown) => log.error({ err }, "drain failed"));
    },
    metadata: { description: "stop pulling, finish or hand back running jobs, and exit" },
  });
  return service;
}

/**
 * The worker's control surface on the NATS services framework, so `nats micro ls|info|stats`
 * lists every worker: `worker.<id>.preflight` re-checks its logins now (an operator who fixed a
 * login asks for this, and the shards resume), `worker.<id>.drain` stops it gracefully.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Msg } from "@nats-io/nats-core";
import { ServiceError, Svcm, type Service } from "@nats-io/services";
import { z } from "zod";
import { IdSchema, RuntimeSchema } from "../../src/schemas/runtime.js";
import type { Logger } from "../../src/logger.js";
import { SERVICES } from "../../src/subjects.js";
import { VERSION } from "../../src/version.js";
import type { Login } from "./logins.js";

export interface ControlTarget {
  id: string;
  runtimes: string[];
  logins(): Login[];
  stop(reason: string): Promise<void>;
  /** Cancels a job running here: false when it does not run here. */
  cancel(jobId: string, reason: string): boolean;
}

const PreflightBody = z.object({ runtime: RuntimeSchema.optional(), force: z.boolean().optional() }).strict();
const CancelBody = z.object({ jobId: IdSchema, reason: z.string().max(500).optional() }).strict();

/** The body as JSON and through its schema, or a 400 naming what is wrong (so `micro stats` counts it). */
function parseBody<T>(msg: Msg, schema: z.ZodType<T>, example: string): T {
  let raw: unknown = {};
  if (msg.data.length > 0) {
    try {
      raw = msg.json();
    } catch {
      throw new ServiceError(400, `body must be JSON such as ${example}`);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ServiceError(400, `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"} (expected ${example})`);
  }
  return parsed.data;
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
      const body = parseBody(msg, PreflightBody, '{"runtime":"codex","force":true} or nothing');
      const logins = target.logins().filter((l) => !body.runtime || l.adapter.runtime === body.runtime);
      if (logins.length === 0) {
        throw new ServiceError(404, `worker ${target.id} serves no ${body.runtime} login (it serves ${target.runtimes.join(", ")})`);
      }
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

  group.addEndpoint("cancel", {
    handler: (_err, msg) => {
      const body = parseBody(msg, CancelBody, '{"jobId":"<id>","reason":"..."}');
      if (!target.cancel(body.jobId, body.reason ?? "cancelled by an operator")) {
        throw new ServiceError(404, `job ${body.jobId} is not running on worker ${target.id}`);
      }
      // Accepted: the agent's whole process tree is stopped, then the run is recorded cancelled.
      msg.respond(JSON.stringify({ workerId: target.id, jobId: body.jobId, accepted: true }));
    },
    metadata: { description: "cancel a job running here; body {jobId, reason?}" },
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

/**
 * One request to an ops (or worker control) endpoint, and what became of it: the reply's JSON, or
 * why there is none — nobody answers, no answer in time, the login may not ask, the service's own
 * error (its code and description), or a reply that is not JSON. The CLI turns these into errors
 * with remedies, the live view into HTTP statuses; neither reads NATS errors itself.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { permissionViolation } from "../nats/errors.js";

export type OpsCall =
  | { ok: true; data: unknown }
  | { ok: false; why: "no-responders" | "timeout" | "forbidden" | "transport" | "not-json"; cause?: unknown }
  | { ok: false; why: "service"; code: number; description: string };

export async function callOps(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number): Promise<OpsCall> {
  let reply;
  try {
    reply = await nc.request(subject, JSON.stringify(body ?? {}), { timeout: timeoutMs });
  } catch (err) {
    const e = err as { name?: string; isNoResponders?: () => boolean; cause?: { name?: string } };
    if (e.isNoResponders?.() || e.cause?.name === "NoResponders" || e.name === "NoResponders") return { ok: false, why: "no-responders", cause: err };
    if (e.name === "TimeoutError" || e.cause?.name === "TimeoutError") return { ok: false, why: "timeout", cause: err };
    if (permissionViolation(err)) return { ok: false, why: "forbidden", cause: err };
    return { ok: false, why: "transport", cause: err };
  }
  const codeHeader = reply.headers?.get("Nats-Service-Error-Code") ?? "";
  if (codeHeader !== "") {
    const code = Number.parseInt(codeHeader, 10) || 500;
    return { ok: false, why: "service", code, description: reply.headers?.get("Nats-Service-Error") || `error ${code}` };
  }
  try {
    return { ok: true, data: reply.json() };
  } catch (err) {
    return { ok: false, why: "not-json", cause: err };
  }
}

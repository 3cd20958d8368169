/** Request bodies as they arrive from NATS (or HTTP): bytes → a validated request, or a 400. */
import type { z } from "zod";
import { badRequest } from "./errors.js";

/**
 * An empty body (what `nats req <subject> ''` sends) is `{}`. Anything else must be a JSON
 * object that `schema` accepts; the 400 names the first problem and its field.
 */
export function parseOpsRequest<S extends z.ZodType>(schema: S, data: Uint8Array, endpoint: string): z.output<S> {
  const text = new TextDecoder().decode(data).trim();
  let body: unknown = {};
  if (text !== "") {
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw badRequest(`${endpoint}: the body is not JSON (${(err as Error).message}); send a JSON object, e.g. {} or {"runId":"<id>"}`, err);
    }
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`${endpoint}: the body must be a JSON object, not ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `field '${issue.path.join(".")}'` : "the body";
    const keys = issue.code === "unrecognized_keys" ? ` (${(issue as { keys: string[] }).keys.map((k) => `'${k}'`).join(", ")})` : "";
    const message = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
    throw badRequest(`${endpoint}: ${where}: ${message}${keys}`);
  }
  return parsed.data;
}

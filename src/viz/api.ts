/**
 * `/api`: the ops endpoints over HTTP. Each route is relayed to its NATS endpoint (`ops.*`, or a
 * worker's `worker.<id>.drain`), so the answer comes from the very code `moonmind` and `nats req`
 * reach — the ops service's — and the visualizer needs no more than its role's requests. A service
 * error keeps its code as the HTTP status; every error is JSON `{error, code}`.
 */
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/nats-core";
import { readLogs } from "../cli/commands/logs.js";
import { ARTIFACTS, OBJECT_STORES, OPS, artifactKey, workerControlSubject } from "../subjects.js";

export interface ApiReply {
  status: number;
  /** JSON unless `text` is given. */
  body?: unknown;
  text?: string;
  contentType?: string;
}

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body of a POST ({} when empty). */
  body: Record<string, unknown>;
}

const fail = (status: number, error: string): ApiReply => ({ status, body: { error, code: status } });

/** Query parameters that are numbers or booleans on the NATS side. */
const NUMBERS = new Set(["shard", "limit", "seq"]);
const BOOLEANS = new Set(["all", "forceRefresh", "states"]);

function queryBody(query: URLSearchParams): { body: Record<string, unknown> } | { failed: ApiReply } {
  const body: Record<string, unknown> = {};
  for (const [key, value] of query) {
    if (NUMBERS.has(key)) {
      const n = Number(value);
      if (value === "" || !Number.isInteger(n)) return { failed: fail(400, `query parameter '${key}' must be an integer, not '${value}'`) };
      body[key] = n;
    } else if (BOOLEANS.has(key)) {
      if (value !== "true" && value !== "false") return { failed: fail(400, `query parameter '${key}' must be true or false, not '${value}'`) };
      body[key] = value === "true";
    } else body[key] = value;
  }
  return { body };
}

interface Route {
  method: "GET" | "POST";
  pattern: RegExp;
  /** The NATS subject and the request body, from the path's captures and the query or body. */
  subject: (m: RegExpExecArray) => string;
  body: (m: RegExpExecArray, input: Record<string, unknown>) => Record<string, unknown>;
  timeoutMs?: number;
}

const runId = (m: RegExpExecArray) => decodeURIComponent(m[1]!);

export const API_ROUTES: Route[] = [
  { method: "GET", pattern: /^\/api\/shards$/, subject: () => OPS.shards, body: (_, q) => q },
  { method: "GET", pattern: /^\/api\/workers$/, subject: () => OPS.workers, body: (_, q) => q },
  { method: "GET", pattern: /^\/api\/runs$/, subject: () => OPS.runsList, body: (_, q) => q },
  { method: "GET", pattern: /^\/api\/runs\/([^/]+)$/, subject: () => OPS.runsGet, body: (m, q) => ({ ...q, runId: runId(m) }) },
  { method: "POST", pattern: /^\/api\/runs\/([^/]+)\/cancel$/, subject: () => OPS.runsCancel, body: (m, b) => ({ ...b, runId: runId(m) }) },
  { method: "POST", pattern: /^\/api\/runs\/([^/]+)\/retry$/, subject: () => OPS.runsRetry, body: (m, b) => ({ ...b, runId: runId(m) }) },
  // A preflight may run a login check (a CLI) on a worker: ops gives it 30 s.
  { method: "POST", pattern: /^\/api\/runs\/([^/]+)\/preflight$/, subject: () => OPS.runsPreflight, body: (m, b) => ({ ...b, runId: runId(m) }), timeoutMs: 45_000 },
  { method: "GET", pattern: /^\/api\/dead$/, subject: () => OPS.deadList, body: (_, q) => q },
  { method: "GET", pattern: /^\/api\/usage$/, subject: () => OPS.usage, body: (_, q) => q },
  { method: "POST", pattern: /^\/api\/workers\/([^/]+)\/drain$/, subject: (m) => workerControlSubject(decodeURIComponent(m[1]!), "drain"), body: () => ({}) },
];

/** Answers an `/api` request. */
export async function handleApi(nc: NatsConnection, req: ApiRequest): Promise<ApiReply> {
  const logs = /^\/api\/runs\/([^/]+)\/logs$/.exec(req.path);
  if (logs && req.method === "GET") return logTail(nc, runId(logs), req.query);
  const patch = /^\/api\/runs\/([^/]+)\/patch$/.exec(req.path);
  if (patch && req.method === "GET") return patchOf(nc, runId(patch));

  const matching = API_ROUTES.filter((r) => r.pattern.test(req.path));
  if (matching.length === 0) return fail(404, `no API route ${req.path}; see GET /api for the list`);
  const route = matching.find((r) => r.method === req.method);
  if (!route) return fail(405, `${req.path} takes ${matching.map((r) => r.method).join(", ")}, not ${req.method}`);
  const m = route.pattern.exec(req.path)!;
  let input: Record<string, unknown>;
  if (req.method === "GET") {
    const q = queryBody(req.query);
    if ("failed" in q) return q.failed;
    input = q.body;
  } else input = req.body;
  return relay(nc, route.subject(m), route.body(m, input), route.timeoutMs ?? 10_000);
}

/** The route table itself, for `GET /api`. */
export function apiIndex(): ApiReply {
  const routes = API_ROUTES.map((r) => ({ method: r.method, path: r.pattern.source.replace(/^\^\\|\$$/g, "").replace(/\\\//g, "/").replace("([^/]+)", ":id"), subject: r.subject(["", ":id"] as unknown as RegExpExecArray) }));
  routes.push({ method: "GET", path: "/api/runs/:id/logs", subject: "LOGS logs.jobs.:id" }, { method: "GET", path: "/api/runs/:id/patch", subject: `object store ${OBJECT_STORES.artifacts}` });
  return { status: 200, body: { routes } };
}

async function relay(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number): Promise<ApiReply> {
  let reply;
  try {
    reply = await nc.request(subject, JSON.stringify(body), { timeout: timeoutMs });
  } catch (err) {
    const e = err as { name?: string; message?: string; isNoResponders?: () => boolean; cause?: { name?: string } };
    if (e.isNoResponders?.() || e.cause?.name === "NoResponders" || e.name === "NoResponders") {
      return fail(503, subject.startsWith("worker.") ? `no worker answered on ${subject}: it is not running` : `no ops service answered on ${subject}: start \`moonmind ops\` (npm start runs it)`);
    }
    if (e.name === "TimeoutError" || e.cause?.name === "TimeoutError") return fail(504, `${subject} did not answer within ${timeoutMs / 1000} s`);
    if (/permission/i.test(e.message ?? "")) return fail(403, `this server's NATS login may not ask ${subject} (the viz role's permissions in nats.conf)`);
    return fail(502, `${subject}: ${e.message ?? String(err)}`);
  }
  const code = reply.headers?.get("Nats-Service-Error-Code") ?? "";
  if (code !== "") {
    const status = Number.parseInt(code, 10);
    return fail(status >= 400 && status < 600 ? status : 500, reply.headers?.get("Nats-Service-Error") || `${subject} failed`);
  }
  try {
    return { status: 200, body: reply.json() };
  } catch {
    return fail(502, `${subject} answered with something that is not JSON`);
  }
}

/** The last `lines` (default 200) lines of the job's output on LOGS. */
async function logTail(nc: NatsConnection, jobId: string, query: URLSearchParams): Promise<ApiReply> {
  const wanted = Number(query.get("lines") ?? "200");
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > 5_000) return fail(400, "query parameter 'lines' must be an integer from 1 to 5000");
  const lines: string[] = [];
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5_000);
  try {
    for await (const batch of readLogs(nc, jobId, { follow: false, signal: controller.signal })) {
      lines.push(...batch.lines);
      if (lines.length > wanted * 2) lines.splice(0, lines.length - wanted);
    }
  } finally {
    clearTimeout(timer);
  }
  return { status: 200, body: { jobId, lines: lines.slice(-wanted) } };
}

async function patchOf(nc: NatsConnection, jobId: string): Promise<ApiReply> {
  const store = await new Objm(nc).open(OBJECT_STORES.artifacts);
  const data = await store.getBlob(artifactKey(jobId, ARTIFACTS.changesPatch));
  if (!data) return fail(404, `job ${jobId} has no ${ARTIFACTS.changesPatch} (yet): a job stores it when it ends with changes`);
  return { status: 200, text: new TextDecoder().decode(data), contentType: "text/x-diff; charset=utf-8" };
}

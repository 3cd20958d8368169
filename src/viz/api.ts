/**
 * `/api`: the ops endpoints over HTTP. Each route is relayed to its NATS endpoint (`ops.*`, or a
 * worker's `worker.<id>.drain`), so the answer comes from the very code `moonmind` and `nats req`
 * reach — the ops service's — and the visualizer needs no more than its role's requests. A service
 * error keeps its code as the HTTP status; every error is JSON `{error, code}`.
 */
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/nats-core";
import { readLogs } from "../cli/commands/logs.js";
import { callOps } from "../ops/client.js";
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
  /** `/api/runs/:id/cancel`: `:id` is a run's (or a worker's) id. */
  path: string;
  /** The NATS subject and the request body, from the path's id and the query or body. */
  subject: (id: string) => string;
  body: (id: string, input: Record<string, unknown>) => Record<string, unknown>;
  timeoutMs?: number;
}

const query = (_: string, q: Record<string, unknown>) => q;
const withRunId = (id: string, b: Record<string, unknown>) => ({ ...b, runId: id });

export const API_ROUTES: Route[] = [
  { method: "GET", path: "/api/shards", subject: () => OPS.shards, body: query },
  { method: "GET", path: "/api/workers", subject: () => OPS.workers, body: query },
  { method: "GET", path: "/api/runs", subject: () => OPS.runsList, body: query },
  { method: "GET", path: "/api/runs/:id", subject: () => OPS.runsGet, body: withRunId },
  { method: "POST", path: "/api/runs/:id/cancel", subject: () => OPS.runsCancel, body: withRunId },
  { method: "POST", path: "/api/runs/:id/retry", subject: () => OPS.runsRetry, body: withRunId },
  // A preflight may run a login check (a CLI) on a worker: ops gives it 30 s.
  { method: "POST", path: "/api/runs/:id/preflight", subject: () => OPS.runsPreflight, body: withRunId, timeoutMs: 45_000 },
  { method: "GET", path: "/api/dead", subject: () => OPS.deadList, body: query },
  { method: "GET", path: "/api/usage", subject: () => OPS.usage, body: query },
  { method: "POST", path: "/api/workers/:id/drain", subject: (id) => workerControlSubject(id, "drain"), body: () => ({}) },
];

const patterns = new Map(API_ROUTES.map((r) => [r, new RegExp(`^${r.path.replace(":id", "([^/]+)")}$`)]));

/** Answers an `/api` request. */
export async function handleApi(nc: NatsConnection, req: ApiRequest): Promise<ApiReply> {
  const logs = /^\/api\/runs\/([^/]+)\/logs$/.exec(req.path);
  if (logs && req.method === "GET") return logTail(nc, decodeURIComponent(logs[1]!), req.query);
  const patch = /^\/api\/runs\/([^/]+)\/patch$/.exec(req.path);
  if (patch && req.method === "GET") return patchOf(nc, decodeURIComponent(patch[1]!));

  const matching = API_ROUTES.filter((r) => patterns.get(r)!.test(req.path));
  if (matching.length === 0) return fail(404, `no API route ${req.path}; see GET /api for the list`);
  const route = matching.find((r) => r.method === req.method);
  if (!route) return fail(405, `${req.path} takes ${matching.map((r) => r.method).join(", ")}, not ${req.method}`);
  const id = decodeURIComponent(patterns.get(route)!.exec(req.path)![1] ?? "");
  let input: Record<string, unknown>;
  if (req.method === "GET") {
    const q = queryBody(req.query);
    if ("failed" in q) return q.failed;
    input = q.body;
  } else input = req.body;
  return relay(nc, route.subject(id), route.body(id, input), route.timeoutMs ?? 10_000);
}

/** The route table itself, for `GET /api`. */
export function apiIndex(): ApiReply {
  const routes = API_ROUTES.map((r) => ({ method: r.method, path: r.path, subject: r.subject(":id") }));
  routes.push({ method: "GET", path: "/api/runs/:id/logs", subject: "LOGS logs.jobs.:id" }, { method: "GET", path: "/api/runs/:id/patch", subject: `object store ${OBJECT_STORES.artifacts}` });
  return { status: 200, body: { routes } };
}

async function relay(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number): Promise<ApiReply> {
  const call = await callOps(nc, subject, body, timeoutMs);
  if (call.ok) return { status: 200, body: call.data };
  switch (call.why) {
    case "no-responders":
      return fail(503, subject.startsWith("worker.") ? `no worker answered on ${subject}: it is not running` : `no ops service answered on ${subject}: start \`moonmind ops\` (npm start runs it)`);
    case "timeout":
      return fail(504, `${subject} did not answer within ${timeoutMs / 1000} s`);
    case "forbidden":
      return fail(403, `this server's NATS login may not ask ${subject} (the viz role's permissions in nats.conf)`);
    case "service":
      return fail(call.code >= 400 && call.code < 600 ? call.code : 500, call.description);
    case "not-json":
      return fail(502, `${subject} answered with something that is not JSON`);
    case "transport":
      return fail(502, `${subject}: ${(call.cause as Error).message}`);
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

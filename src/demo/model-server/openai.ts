/**
 * OpenAI Responses API (codex with a custom provider): `POST /v1/responses` answered as SSE, the
 * vendor's 401 bodies, and the ChatGPT backend calls codex makes in ChatGPT mode (`/backend-api/...`).
 */
import type { ServerResponse } from "node:http";
import { sendJson } from "./http.js";
import { arr, newId, obj, str, type Obj } from "./json.js";
import { isJwt } from "./oauth.js";
import { nextMove, stepCommand, type Turn } from "./script.js";

/** The events of one streamed response: a tool call for the next `write`, else the final message. */
export function openaiTurn(body: Obj): Obj[] {
  const turns = arr(body.input).map(obj).map((item): Turn => {
    if (item.type === "function_call_output" || item.type === "custom_tool_call_output") {
      return { role: "user", texts: [], toolResults: 1 };
    }
    if (item.type === "message" && item.role === "user") {
      return { role: "user", texts: [arr(item.content).map((c) => str(obj(c).text)).join("")], toolResults: 0 };
    }
    const fromModel = item.type !== "additional_tools" && !(item.type === "message" && item.role !== "assistant");
    return { role: fromModel ? "model" : "context", texts: [], toolResults: 0 };
  });
  const move = nextMove(turns);
  // A direct function_call to exec_command works although codex 0.169 only advertises it nested
  // in its "code mode" tool; login:false keeps bash from sourcing the machine's profile.
  const item: Obj =
    move.kind !== "say"
      ? { type: "function_call", id: newId("fc_"), call_id: newId("call_"), name: "exec_command", status: "completed",
          arguments: JSON.stringify({ cmd: stepCommand(move), login: false }) }
      : { type: "message", id: newId("msg_"), role: "assistant", status: "completed",
          content: [{ type: "output_text", text: move.text, annotations: [] }] };
  const responseId = newId("resp_");
  const usage = { input_tokens: 10, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 15 };
  return [
    { type: "response.created", response: { id: responseId, status: "in_progress" } },
    { type: "response.output_item.added", output_index: 0, item },
    { type: "response.output_item.done", output_index: 0, item },
    { type: "response.completed", response: { id: responseId, status: "completed", usage } },
  ];
}

/** OpenAI's own 401 bodies: a ChatGPT login (JWT bearer) that is unknown or expired, else a bad API key. */
export function openaiUnauthorized(bearer: string | undefined, reason: "expired" | "unknown" | "failAuth"): Obj {
  const error = (code: string, message: string) => ({
    error: { message, type: "invalid_request_error", param: null, code },
  });
  if (bearer && isJwt(bearer)) {
    return reason === "unknown"
      ? error("invalid_token", "Could not validate your token. Please try signing in again.")
      : error("token_expired", "Provided authentication token is expired. Please try signing in again.");
  }
  const keyHelp = "You can find your API key at https://platform.openai.com/account/api-keys.";
  return error("invalid_api_key", `Incorrect API key provided: ${bearer ?? ""}. ${keyHelp}`);
}

// ChatGPT backend: what codex 0.169 calls at chatgpt_base_url in ChatGPT mode (measured). None is
// needed for a turn (404s work too); these minimal answers keep its stderr free of connector
// errors and its state empty: no plugins, no connectors, no commit attribution.

/** `route` is the path after `/backend-api`. */
export function chatgptBackend(res: ServerResponse, route: string, body: Obj, accountId: string): void {
  const none = { plugins: [], pagination: { next_page_token: null } };
  if (route === "/ps/plugins/installed") return sendJson(res, 200, none);
  if (route.startsWith("/ps/plugins/suggested")) return sendJson(res, 200, { enabled: false, plugins: [] });
  if (route === "/wham/settings/user") return sendJson(res, 200, { commit_attribution_enabled: false });
  if (route === "/wham/accounts/check") {
    const account = { id: accountId, structure: "personal", plan_type: "pro" };
    return sendJson(res, 200, { accounts: [account], default_account_id: accountId, account_ordering: [accountId] });
  }
  if (route === "/codex/analytics-events/events") return sendJson(res, 200, {});
  if (route === "/ps/mcp") return mcpConnectors(res, body);
  sendJson(res, 404, { detail: "Not Found" });
}

/** The hosted connectors MCP server (JSON-RPC over streamable HTTP), with nothing in it. */
function mcpConnectors(res: ServerResponse, msg: Obj): void {
  if (msg.id === undefined) return void res.writeHead(202).end(); // a notification
  const protocolVersion = str(obj(msg.params).protocolVersion) || "2025-06-18";
  const results: Record<string, unknown> = {
    initialize: {
      protocolVersion,
      capabilities: { tools: {}, resources: {} },
      serverInfo: { name: "scripted", version: "0" },
    },
    "tools/list": { tools: [] },
    "resources/list": { resources: [] },
    "resources/templates/list": { resourceTemplates: [] },
  };
  const result = results[str(msg.method)];
  sendJson(res, 200, result === undefined
    ? { jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "Method not found" } }
    : { jsonrpc: "2.0", id: msg.id, result });
}

/** Anthropic Messages API (claude with ANTHROPIC_BASE_URL): `POST /v1/messages`, as JSON or SSE, and its 401 body. */
import { arr, fillSchema, newId, obj, str, type Obj } from "./json.js";
import { nextMove, stepCommand, type Turn } from "./script.js";

/** The whole assistant message for a request: a Bash tool call for the next `write`, else the final text. */
export function anthropicMessage(body: Obj): Obj {
  let content: Obj[];
  if (arr(body.tools).length === 0) {
    // No tools: a side request (session title, classifier). Answer the JSON schema it asks for.
    const format = obj(obj(body.output_config).format);
    const text = format.type === "json_schema" ? JSON.stringify(fillSchema(format.schema)) : "ok";
    content = [{ type: "text", text }];
  } else {
    const turns = arr(body.messages).map(obj).map((m): Turn => {
      const blocks = typeof m.content === "string" ? [{ type: "text", text: m.content }] : arr(m.content).map(obj);
      return {
        role: m.role === "user" ? "user" : m.role === "assistant" ? "model" : "context",
        texts: blocks.filter((b) => b.type === "text").map((b) => str(b.text)),
        toolResults: blocks.filter((b) => b.type === "tool_result").length,
      };
    });
    const move = nextMove(turns);
    // Bash, not Write: claude's Write refuses to overwrite a file it has not Read first.
    content = move.kind !== "say"
      ? [{ type: "tool_use", id: newId("toolu_"), name: "Bash",
           input: { command: stepCommand(move), description: move.kind === "write" ? `Write ${move.path}` : "Run a command" } }]
      : [{ type: "text", text: move.text }];
  }
  return { id: newId("msg_"), type: "message", role: "assistant", model: str(body.model) || "claude-scripted", content,
    stop_reason: content.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn", stop_sequence: null,
    usage: { input_tokens: 25, output_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } };
}

/** The same message as the SSE events of a streamed answer. */
export function anthropicEvents(message: Obj): Array<[string, Obj]> {
  const events: Array<[string, Obj]> = [
    ["message_start", { type: "message_start", message: { ...message, content: [], stop_reason: null } }],
  ];
  arr(message.content).map(obj).forEach((b, index) => {
    const start = b.type === "text" ? { type: "text", text: "" } : { ...b, input: {} };
    const delta = b.type === "text"
      ? { type: "text_delta", text: str(b.text) }
      : { type: "input_json_delta", partial_json: JSON.stringify(b.input) };
    events.push(["content_block_start", { type: "content_block_start", index, content_block: start }]);
    events.push(["content_block_delta", { type: "content_block_delta", index, delta }]);
    events.push(["content_block_stop", { type: "content_block_stop", index }]);
  });
  const delta = { stop_reason: message.stop_reason, stop_sequence: null };
  events.push(["message_delta", { type: "message_delta", delta, usage: { output_tokens: 10 } }]);
  events.push(["message_stop", { type: "message_stop" }]);
  return events;
}

/** Anthropic's own 401 body: an expired OAuth token (bearer) or a bad API key. */
export function anthropicUnauthorized(bearer: string | undefined): Obj {
  const message = bearer
    ? "OAuth token has expired. Please obtain a new token or refresh your existing token."
    : "invalid x-api-key";
  return { type: "error", error: { type: "authentication_error", message } };
}

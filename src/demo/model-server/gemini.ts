/**
 * Gemini API (gemini with GOOGLE_GEMINI_BASE_URL):
 * `POST /v1beta/models/<m>:generateContent|streamGenerateContent`, and its 401 body.
 */
import { arr, fillSchema, obj, type Obj } from "./json.js";
import { nextMove, type Turn } from "./script.js";

/** One model turn: write_file for a `write`, run_shell_command for a `run`, else the final text. */
export function geminiTurn(body: Obj): Obj {
  const turns = arr(body.contents).map(obj).map((c): Turn => {
    const parts = arr(c.parts).map(obj);
    return {
      role: c.role === "model" ? "model" : "user",
      texts: parts.flatMap((p) => (typeof p.text === "string" ? [p.text] : [])),
      toolResults: parts.filter((p) => p.functionResponse).length,
    };
  });
  const move = nextMove(turns);
  if (move.kind === "write") {
    return geminiCandidate({ functionCall: { name: "write_file", args: { file_path: move.path, content: `${move.text}\n` } } });
  }
  if (move.kind === "run") return geminiCandidate({ functionCall: { name: "run_shell_command", args: { command: move.command } } });
  return geminiCandidate({ text: move.text });
}

function geminiCandidate(part: Obj): Obj {
  return { candidates: [{ content: { role: "model", parts: [part] }, finishReason: "STOP", index: 0 }],
    usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 5, totalTokenCount: 15 }, modelVersion: "scripted-1" };
}

/** Non-streamed JSON calls are the CLI's utility requests (model router, next-speaker check). */
export function geminiGenerate(body: Obj): Obj {
  const config = obj(body.generationConfig);
  if (config.responseMimeType !== "application/json") return geminiTurn(body);
  const schema = config.responseJsonSchema ?? config.responseSchema;
  return geminiCandidate({ text: JSON.stringify(schema ? fillSchema(schema) : { model_choice: "flash" }) });
}

/** Gemini's own 401 body. */
export function geminiUnauthorized(): Obj {
  const message = "API key not valid. Please pass a valid API key.";
  return { error: { code: 401, message, status: "UNAUTHENTICATED" } };
}

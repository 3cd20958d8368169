import { z } from "zod";

export const RUNTIMES = ["codex", "claude", "gemini"] as const;
export const RuntimeSchema = z.enum(RUNTIMES);
export type Runtime = z.infer<typeof RuntimeSchema>;

/** A token safe inside a NATS subject and a KV key: letters, digits, `_` and `-`. */
export const IdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, "use only letters, digits, '_' and '-' (it becomes a NATS subject token)");

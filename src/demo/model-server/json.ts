/** Loose readers for request bodies we do not control, and placeholder answers to JSON schemas. */
import { randomBytes } from "node:crypto";

export type Obj = Record<string, unknown>;
export const obj = (v: unknown): Obj => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string => (typeof v === "string" ? v : "");
export const newId = (prefix: string) => `${prefix}${randomBytes(12).toString("hex")}`;

/** Fills a JSON schema with placeholders, for the CLIs' structured side requests (titles, routers). */
export function fillSchema(schema: unknown): unknown {
  const s = obj(schema);
  if (Array.isArray(s.enum)) return s.enum[0];
  switch (str(s.type).toLowerCase()) {
    case "object":
      return Object.fromEntries(Object.entries(obj(s.properties)).map(([k, v]) => [k, fillSchema(v)]));
    case "array":
      return [];
    case "integer":
    case "number":
      return 10;
    case "boolean":
      return false;
    default:
      return "scripted";
  }
}

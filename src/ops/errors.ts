/**
 * What an ops request can fail with: a code (the service error code, and the HTTP status an API
 * would use) and a description an operator can act on. Recognised by `name` and `code`, so it
 * survives a process boundary.
 */
import { OPS_ERROR_CODES, type OpsErrorCode } from "../schemas/ops.js";

export class OpsRequestError extends Error {
  override name = "OpsRequestError";
  constructor(
    readonly code: OpsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const badRequest = (message: string, cause?: unknown) => new OpsRequestError(OPS_ERROR_CODES.badRequest, message, { cause });
export const notFound = (message: string) => new OpsRequestError(OPS_ERROR_CODES.notFound, message);
export const conflict = (message: string) => new OpsRequestError(OPS_ERROR_CODES.conflict, message);
export const unavailable = (message: string, cause?: unknown) => new OpsRequestError(OPS_ERROR_CODES.unavailable, message, { cause });

export function isOpsRequestError(err: unknown): err is OpsRequestError {
  return (err as Error | null)?.name === "OpsRequestError" && typeof (err as OpsRequestError).code === "number";
}

/** Any failure as a code and description: an OpsRequestError as it is, anything else a 500. */
export function toOpsFailure(err: unknown): { code: number; description: string } {
  if (isOpsRequestError(err)) return { code: err.code, description: err.message };
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: OPS_ERROR_CODES.internal, description: `ops failed: ${e.message || e.name}` };
}

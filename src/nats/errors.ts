/** Recognising JetStream API errors by code (and message, for older servers). */

interface ApiErrorLike {
  name?: string;
  message?: string;
  api_error?: { err_code?: number };
}

/** A stream or consumer that does not exist (10059, 10014). */
export function isNotFound(err: unknown): boolean {
  const e = err as ApiErrorLike | null;
  return (
    e?.name === "StreamNotFoundError" ||
    e?.name === "ConsumerNotFoundError" ||
    e?.api_error?.err_code === 10059 ||
    e?.api_error?.err_code === 10014 ||
    /not found/i.test(e?.message ?? "")
  );
}

/** A compare-and-set that lost: the key moved on, or already exists (10071). */
export function isWrongLastSequence(err: unknown): boolean {
  const e = err as ApiErrorLike | null;
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(e?.message ?? "");
}

/** The server's refusal under this login's permissions (nats.conf), however the client wrapped it. */
export function permissionViolation(err: unknown): (Error & { subject?: string; operation?: string }) | undefined {
  for (let e = err as (Error & { cause?: unknown }) | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.name === "PermissionViolationError") return e;
  }
  return undefined;
}

/**
 * JetStream away for a moment rather than refusing: no responders (a stream or the API without a
 * leader yet), a request timeout, or 503 "JetStream system temporarily unavailable" — a server
 * restarting, or a cluster electing its leaders again after losing a node. A refusal, a missing
 * stream or consumer, or anything else is not this.
 */
export function isJetStreamAway(err: unknown): boolean {
  for (let e = err as (Error & { cause?: unknown; status?: unknown }) | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.name === "PermissionViolationError" || isNotFound(e)) return false;
    if (e.name === "TimeoutError" || e.name === "NoResponders" || e.name === "JetStreamNotEnabled") return true;
    if (e.name === "JetStreamApiError" && e.status === 503) return true;
    if (/temporarily unavailable|no responders/i.test(e.message ?? "")) return true;
  }
  return false;
}

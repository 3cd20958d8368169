/** Human lines for status events; `--json` prints the events themselves. */
import type { JobEvent, RequeueableState, SubmissionEvent, WorkerEvent } from "../schemas/events.js";
import type { StatusEvent } from "./follow.js";

const time = (iso: string) => iso.slice(11, 19);

const AFTER: Record<RequeueableState, string> = { failed: "failed", cancelled: "was cancelled", dead_letter: "was dead-lettered" };

export function describeJobEvent(e: JobEvent): string {
  switch (e.type) {
    case "accepted":
      return `accepted for ${e.runtime} (${e.repository})`;
    case "rejected":
      return `rejected: ${e.reason}`;
    case "routed":
      return `routed to ${e.subject} (consumer ${e.consumer})`;
    case "claimed":
      return `claimed by ${e.workerId}, attempt ${e.attempt}`;
    case "preflight":
      return `preflight ${e.status}: ${e.message}`;
    case "started":
      return `started ${e.runtime} on ${e.workerId}`;
    case "progress":
      return `… ${e.message}`;
    case "succeeded":
      return `succeeded ${e.outcome} in ${(e.durationMs / 1000).toFixed(1)} s${e.summary ? `: ${oneLine(e.summary)}` : ""}`;
    case "failed":
      return `${e.state === "dead_letter" ? "dead-lettered" : "failed"}${e.attempt ? ` after attempt ${e.attempt}` : ""}: ${e.error.code}: ${e.error.message}`;
    case "cancelled":
      return `cancelled: ${e.reason}`;
    case "retrying":
      return `retrying in ${(e.delayMs / 1000).toFixed(1)} s after attempt ${e.attempt}: ${e.error.code}: ${e.error.message}`;
    case "waiting":
      return `waiting: ${e.reason}`;
    case "requeued":
      return `requeued by ${e.by} after it ${AFTER[e.previousState]}: attempt ${e.attempt} on ${e.subject}`;
    case "state":
      return `machine ${e.states.join(" + ")} (on ${e.event}, ${e.workerId})`;
  }
}

export function describeWorkerEvent(e: WorkerEvent): string {
  switch (e.type) {
    case "online":
      return `online: ${e.runtimes.join(",")} on ${e.shards.join(" ")} (concurrency ${e.concurrency}, v${e.version})`;
    case "heartbeat":
      return `heartbeat (${e.inFlight.length} running)`;
    case "preflight":
      return `preflight ${e.runtime} ${e.status}: ${e.message}`;
    case "diagnostics":
      return `diagnostics ${JSON.stringify(e.detail)}`;
    case "paused":
      return `paused ${e.runtime} (${e.volume}; ${e.shards.join(" ")}): ${e.reason}`;
    case "resumed":
      return `resumed ${e.runtime} (${e.volume}; ${e.shards.join(" ")})`;
    case "draining":
      return `draining (${e.inFlight.length} running)`;
    case "offline":
      return `offline: ${e.reason}`;
    case "state":
      return `${e.machine}${e.login ? ` ${e.login}` : ""} machine ${e.states.join(" + ")} (on ${e.event})`;
  }
}

export function jobLine(e: JobEvent): string {
  return `${time(e.at)}  ${e.jobId}  ${describeJobEvent(e)}`;
}

export function workerLine(e: WorkerEvent): string {
  return `${time(e.at)}  worker ${e.workerId}  ${describeWorkerEvent(e)}`;
}

export function describeSubmissionEvent(e: SubmissionEvent): string {
  switch (e.type) {
    case "rejected":
      return `submission rejected: ${e.reason}`;
    case "duplicate":
      return e.sameRequest ? `already submitted, state ${e.state}` : `already submitted with a different request, state ${e.state}`;
  }
}

export function submissionLine(e: SubmissionEvent): string {
  return `${time(e.at)}  ${e.jobId}  ${describeSubmissionEvent(e)}`;
}

/** One line for any status event. */
export function statusLine(item: StatusEvent): string {
  switch (item.kind) {
    case "job":
      return jobLine(item.event);
    case "worker":
      return workerLine(item.event);
    case "submission":
      return submissionLine(item.event);
  }
}

/** Whether a job event ends the job's story (for --wait and `watch <id>`); `requeued` starts another attempt of it. */
export function isTerminal(e: JobEvent): boolean {
  return e.type === "succeeded" || e.type === "failed" || e.type === "cancelled" || e.type === "rejected";
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, " ").trim();
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/**
 * The run records in KV `runs`. Every write is compare-and-set on the revision it read, so two
 * workers (or a worker and an operator) can never both move one run.
 */
import { isWrongLastSequence } from "../nats/errors.js";
import type { KV } from "@nats-io/kv";
import { RunRecordSchema, type RunRecord } from "../schemas/run.js";

export interface StoredRun {
  record: RunRecord;
  revision: number;
}

/** The record changed under us: somebody else's write won. */
export class RunConflictError extends Error {
  override name = "RunConflictError";
  readonly code = "RUN_CONFLICT";
}

export class RunStore {
  constructor(private readonly kv: KV) {}

  /** Creates the record; false when one with this id already exists. */
  async create(record: RunRecord): Promise<boolean> {
    try {
      await this.kv.create(record.jobId, JSON.stringify(record));
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  async get(jobId: string): Promise<StoredRun | undefined> {
    const entry = await this.kv.get(jobId);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    return { record: RunRecordSchema.parse(entry.json()), revision: entry.revision };
  }

  /** As `get`, but a record that no longer parses is `null` rather than an error: it exists, unreadable. */
  async lookup(jobId: string): Promise<StoredRun | null | undefined> {
    try {
      return await this.get(jobId);
    } catch (err) {
      if ((err as Error | null)?.name === "ZodError") return null;
      throw err;
    }
  }

  /**
   * Reads, applies `change`, writes back if the revision is still the one read; retries a few
   * times on a conflict. `change` returns undefined to leave the record as it is. Throws
   * RunConflictError when the retries run out.
   */
  async update(
    jobId: string,
    change: (current: RunRecord) => RunRecord | undefined,
    retries = 5,
  ): Promise<StoredRun | undefined> {
    for (let i = 0; i <= retries; i++) {
      const current = await this.get(jobId);
      if (!current) return undefined;
      const next = change(current.record);
      if (next === undefined) return current;
      try {
        const revision = await this.kv.update(jobId, JSON.stringify(next), current.revision);
        return { record: next, revision };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new RunConflictError(`run ${jobId} kept changing under us; gave up after ${retries + 1} tries`);
  }

  /** Writes only if the record is still at `revision`; throws RunConflictError otherwise. */
  async replace(jobId: string, record: RunRecord, revision: number): Promise<number> {
    try {
      return await this.kv.update(jobId, JSON.stringify(record), revision);
    } catch (err) {
      if (isWrongLastSequence(err)) throw new RunConflictError(`run ${jobId} was changed by someone else`, { cause: err });
      throw err;
    }
  }
}

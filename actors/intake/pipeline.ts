/**
 * A bounded, keyed pipeline: at most `limit` tasks are admitted at once; tasks that share a key
 * run one after another in the order they were pushed, tasks with different keys run
 * concurrently. `push` resolves when its task is admitted (not when it is done), so a caller
 * that awaits each push is held back while the pipeline is full: that is the bound. Admission is
 * first come, first served, so the order per key is the order of the `push` calls.
 *
 * Intake keys by job id: two messages under one id (a duplicate, a redelivery) never overlap.
 */
export type PipelineTask = () => Promise<unknown>;

interface Pending {
  key: string;
  task: PipelineTask;
  admitted: () => void;
}

export class KeyedPipeline {
  /** Per key, the end of its last admitted task: the next one of that key starts after it. */
  private readonly tails = new Map<string, Promise<void>>();
  private readonly pending: Pending[] = [];
  private readonly idleWaiters: Array<() => void> = [];
  private admitted = 0;

  /**
   * @param limit tasks admitted at once (running, or waiting behind an earlier task of their key)
   * @param onError a task that throws is reported here; the pipeline goes on
   */
  constructor(
    readonly limit: number,
    private readonly onError: (err: unknown, key: string) => void = () => undefined,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a pipeline's limit must be a whole number ≥ 1, not ${limit}`);
  }

  /** Tasks admitted and not yet done. */
  get inFlight(): number {
    return this.admitted;
  }

  /** Pushes waiting for room. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Queues the task under `key`; resolves once it is admitted. */
  push(key: string, task: PipelineTask): Promise<void> {
    return new Promise<void>((admitted) => {
      this.pending.push({ key, task, admitted });
      this.pump();
    });
  }

  /** Resolves when nothing is admitted or waiting for room. */
  idle(): Promise<void> {
    if (this.admitted === 0 && this.pending.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.admitted < this.limit && this.pending.length > 0) {
      const next = this.pending.shift()!;
      this.admit(next);
      next.admitted();
    }
    if (this.admitted === 0 && this.pending.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private admit({ key, task }: Pending): void {
    this.admitted++;
    const before = this.tails.get(key) ?? Promise.resolve();
    const done: Promise<void> = before
      .then(() => task())
      .then(
        () => undefined,
        (err: unknown) => {
          try {
            this.onError(err, key);
          } catch {
            // a failing reporter must not wedge the key
          }
        },
      )
      .finally(() => {
        if (this.tails.get(key) === done) this.tails.delete(key);
        this.admitted--;
        this.pump();
      });
    this.tails.set(key, done);
  }
}

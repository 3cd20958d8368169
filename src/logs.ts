/**
 * Agent output, batched onto `logs.jobs.<id>`: flushed every `intervalMs` or `maxLines`,
 * whichever comes first, with secret-looking values redacted. Also keeps the whole output
 * for the `output.log` artifact.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { redactText } from "./secrets.js";
import { jobLogSubject } from "./subjects.js";

export interface LogBatch {
  jobId: string;
  seq: number;
  at: string;
  lines: string[];
}

export class LogBatcher {
  private pending: string[] = [];
  private readonly all: string[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jobId: string,
    private readonly opts: { intervalMs: number; maxLines: number; maxKeptBytes?: number },
  ) {}

  private keptBytes = 0;

  push(line: string): void {
    const clean = redactText(line);
    this.pending.push(clean);
    const limit = this.opts.maxKeptBytes ?? 20 * 1024 * 1024;
    if (this.keptBytes < limit) {
      this.all.push(clean);
      this.keptBytes += clean.length + 1;
    }
    if (this.pending.length >= this.opts.maxLines) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.opts.intervalMs);
  }

  /** Publishes what is waiting. Core publish: LOGS captures it; a lost batch must not stall a job. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch: LogBatch = { jobId: this.jobId, seq: ++this.seq, at: new Date().toISOString(), lines: this.pending };
    this.pending = [];
    if (!this.nc.isClosed()) this.nc.publish(jobLogSubject(this.jobId), JSON.stringify(batch));
  }

  /** Everything pushed so far, for the output.log artifact. */
  text(): string {
    return this.all.length === 0 ? "" : `${this.all.join("\n")}\n`;
  }
}

/**
 * One login (a runtime's volume) as a worker hosts it: its adapter, its auth machine, the
 * per-login bound on concurrent runs, and whether its shards are being pulled.
 */
import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent } from "xstate";
import { authMachine, type AuthAnnouncement } from "../../machines/auth.machine.js";
import type { ShardBinding } from "../../src/config.js";
import type { Logger } from "../../src/logger.js";
import type { RuntimeAdapter, LoginVolume, AuthCheck, UsageLimit } from "../../src/runtimes/types.js";
import type { PreflightResult } from "../../src/schemas/run.js";
import { Slots } from "./slots.js";

/** The longest a usage limit keeps a login waiting before it is looked at again (a weekly plan limit). */
const MAX_LIMIT_WAIT_MS = 7 * 24 * 3_600_000;
/** Without a reset time from the CLI. */
const DEFAULT_LIMIT_BACKOFF_MS = 15 * 60_000;

export class Login {
  readonly key: string;
  readonly bindings: ShardBinding[] = [];
  readonly auth: Actor<typeof authMachine>;
  slots: Slots = new Slots(1);
  private pausedFlag = false;
  private readonly limitBackoffMs: number;
  private resumeWaiters: Array<() => void> = [];

  constructor(
    readonly adapter: RuntimeAdapter,
    readonly volume: LoginVolume,
    settings: { ttlMs: number; recheckMs: number; limitBackoffMs?: number },
    announce: (login: Login, a: AuthAnnouncement) => void,
    log: Logger,
    /** XState inspection (the live view's transitions). */
    inspect?: (ev: InspectionEvent) => void,
  ) {
    this.key = loginKey(adapter.runtime, volume);
    this.limitBackoffMs = settings.limitBackoffMs ?? DEFAULT_LIMIT_BACKOFF_MS;
    this.auth = createActor(
      authMachine.provide({
        actors: {
          // The signal ends a check under way when the login stops: no CLI outlives its worker.
          check: fromPromise(async ({ signal }): Promise<AuthCheck> => {
            try {
              return await adapter.check(volume, signal);
            } catch (err) {
              log.error({ err, login: this.key }, "login check threw");
              return {
                state: "unavailable",
                result: { status: "failed", checkedAt: new Date().toISOString(), volume: volume.name, message: `the ${adapter.runtime} login check failed: ${(err as Error).message}` },
              };
            }
          }),
        },
        actions: { announce: (_, a) => announce(this, a) },
      }),
      { input: { ttlMs: settings.ttlMs, recheckMs: settings.recheckMs }, ...(inspect ? { inspect } : {}) },
    );
  }

  start(): void {
    this.auth.start();
  }

  stop(): void {
    this.auth.stop();
  }

  /** Resolves once the first (or a forced) check has settled. */
  async settled(): Promise<void> {
    await waitFor(this.auth, (s) => !s.matches("checking"), { timeout: 120_000 });
  }

  get ready(): boolean {
    return this.auth.getSnapshot().matches("ready");
  }

  /**
   * A job's preflight: answered from the auth state (the machine re-checks on its TTL), waiting
   * for a check under way. A result that is not `passed` sends the job back to the queue.
   */
  async preflight(): Promise<PreflightResult> {
    const s = await waitFor(this.auth, (snap) => !snap.matches("checking"), { timeout: 120_000 });
    return (
      s.context.last?.result ?? {
        status: "failed",
        checkedAt: new Date().toISOString(),
        volume: this.volume.name,
        message: `the ${this.adapter.runtime} login check could not run: ${this.adapter.remedy(this.volume)}`,
      }
    );
  }

  /** Re-checks now; `force` believes a pass even of credentials a job proved dead. */
  async recheck(force: boolean): Promise<PreflightResult> {
    this.auth.send({ type: "CHECK", force });
    return this.preflight();
  }

  /**
   * A job met the plan's usage limit: the login waits until its reset (or a bounded backoff when
   * the CLI gave none, at most a week), its shards paused. Returns the time it waits for.
   */
  usageLimited(limit: UsageLimit, now = new Date()): string {
    const fallback = this.limitBackoffMs;
    const untilMs = limit.resetsAt ? limit.resetsAt.getTime() : now.getTime() + fallback;
    const retryInMs = Math.min(Math.max(untilMs - now.getTime(), 1_000), MAX_LIMIT_WAIT_MS);
    const until = new Date(now.getTime() + retryInMs).toISOString();
    const wait = retryInMs < 90_000 ? `${Math.round(retryInMs / 1000)} s` : `${Math.round(retryInMs / 60_000)} min`;
    const said = limit.resetsAt ? "" : ` (the CLI gave no reset time: checked again in ${wait})`;
    this.auth.send({ type: "USAGE_LIMITED", evidence: `${limit.evidence.replace(/\s+/g, " ").slice(0, 200)}${said}`, at: now.toISOString(), until, retryInMs });
    return until;
  }

  loginExpired(evidence: string): void {
    this.auth.send({
      type: "LOGIN_EXPIRED",
      evidence: evidence.replace(/\s+/g, " ").slice(0, 200),
      at: new Date().toISOString(),
      remedy: this.adapter.remedy(this.volume),
    });
  }

  get paused(): boolean {
    return this.pausedFlag;
  }

  pause(): void {
    this.pausedFlag = true;
  }

  resume(): void {
    this.pausedFlag = false;
    for (const w of this.resumeWaiters.splice(0)) w();
  }

  /** Waits while the login is paused; false when the signal ends the wait. */
  whileResumed(signal: AbortSignal): Promise<boolean> {
    if (!this.pausedFlag) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
      this.resumeWaiters.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(!signal.aborted);
      });
    });
  }
}

export function loginKey(runtime: string, volume: LoginVolume): string {
  return `${runtime}:${volume.name}`;
}

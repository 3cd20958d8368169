/**
 * The worker's side of "one login, many jobs": rotated credentials go back to their volume by
 * compare-and-set under the volume's lock, and every codex login gets a single-flight token
 * broker that its runs refresh through (CODEX_REFRESH_TOKEN_URL_OVERRIDE).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { CredentialStore } from "../../src/auth/credential-store.js";
import { TokenBroker } from "../../src/auth/token-broker.js";
import { VolumeLock } from "../../src/auth/volume-lock.js";
import type { Logger } from "../../src/logger.js";
import type { CredentialWriter } from "../../src/runtimes/home.js";
import type { LoginVolume } from "../../src/runtimes/types.js";

export class WorkerCredentials {
  private lock: Promise<VolumeLock> | undefined;
  private readonly stores = new Map<string, CredentialStore>();
  private readonly brokers = new Map<string, TokenBroker>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly owner: string,
    private readonly replicas: number,
    private readonly log: Logger,
  ) {}

  private volumeLock(): Promise<VolumeLock> {
    this.lock ??= VolumeLock.open(this.nc, this.replicas);
    return this.lock;
  }

  readonly writer: CredentialWriter = async (volume, file, expectedDigest, next, validate) => {
    const key = `${volume.path}\u0000${file}`;
    let store = this.stores.get(key);
    if (!store) {
      store = new CredentialStore({ dir: volume.path, file, lock: await this.volumeLock(), owner: this.owner });
      this.stores.set(key, store);
    }
    return store.compareAndSet(expectedDigest, next, validate);
  };

  /** Starts the broker for a codex volume (idempotent). */
  async startBroker(volume: LoginVolume, upstreamUrl: string): Promise<string> {
    const existing = this.brokers.get(volume.path);
    if (existing) return existing.url;
    const broker = new TokenBroker({
      upstreamUrl,
      volume: { dir: volume.path },
      nc: this.nc,
      owner: this.owner,
      replicas: this.replicas,
      logger: this.log.child({ broker: volume.name }),
    });
    const url = await broker.start();
    this.brokers.set(volume.path, broker);
    this.log.info({ volume: volume.name }, "token broker serving the login's refreshes");
    return url;
  }

  brokerUrl(volume: LoginVolume): string | undefined {
    return this.brokers.get(volume.path)?.url;
  }

  brokerStats(): Record<string, unknown> {
    return Object.fromEntries([...this.brokers].map(([path, b]) => [path, { ...b.stats }]));
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.brokers.values()].map((b) => b.stop()));
    this.brokers.clear();
  }
}

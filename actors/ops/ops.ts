/**
 * Ops: the `moonmind-ops` service on the NATS services framework, so `nats micro ls|info|stats`
 * lists it next to the workers. Every replica joins one queue group; each request is answered by
 * one. JSON in, JSON out; every failure is a service error with a code, counted in `micro stats`.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { closeConnection } from "../../src/nats/connect.js";
import { ServiceError, Svcm, type Service, type ServiceMsg } from "@nats-io/services";
import type { Config } from "../../src/config.js";
import type { Logger } from "../../src/logger.js";
import { openOpsContext, type OpsContext } from "../../src/ops/context.js";
import { toOpsFailure } from "../../src/ops/errors.js";
import { parseOpsRequest } from "../../src/ops/request.js";
import { WaitingMonitor } from "../../src/ops/waiting-monitor.js";
import { OPS_QUEUE, SERVICES } from "../../src/subjects.js";
import { VERSION } from "../../src/version.js";
import { OPS_ENDPOINTS, type OpsEndpointDef } from "./endpoints.js";
import { errorCounter } from "./error-count.js";

export class Ops implements AsyncDisposable {
  private service: Service | undefined;
  private ctx!: OpsContext;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;
  private countError: (endpoint: string, err: Error) => void = () => undefined;
  private waiting: WaitingMonitor | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.ctx = await openOpsContext(this.nc, this.config);
    const { runsKv, runs, workersKv, publisher } = this.ctx;
    this.waiting = new WaitingMonitor({ runsKv, runs, workersKv, publisher, env: this.config.env, log: this.log });
    await this.waiting.start();
    const monitor = this.waiting;
    this.ctx.queuedRuns = (runtime, shard) => monitor.queuedOn(runtime, shard);
    const service = await new Svcm(this.nc).add({
      name: SERVICES.ops,
      version: VERSION,
      description: "MoonMind operations: shard health, workers, runs, dead letters",
      queue: OPS_QUEUE,
    });
    this.service = service;
    this.countError = errorCounter(service, this.log);
    for (const endpoint of OPS_ENDPOINTS) {
      service.addEndpoint(endpoint.name, {
        subject: endpoint.subject,
        handler: (err, msg) => {
          if (err) {
            this.log.error({ err, endpoint: endpoint.subject }, "ops endpoint subscription failed");
            return;
          }
          this.handle(endpoint, msg);
        },
        metadata: { description: endpoint.description },
      });
    }
    service.stopped.then((err) => {
      if (err && !this.stopping) this.log.error({ err }, "the ops service stopped by itself");
      if (!this.stopping) void this.stop("the ops service stopped");
    });
    this.log.info({ service: SERVICES.ops, endpoints: OPS_ENDPOINTS.map((e) => e.subject) }, "ops serving");
  }

  /**
   * The request is judged synchronously: a bad one throws a ServiceError here, which the framework
   * answers and counts. The work itself is async; its failure is answered with respondError and
   * counted by us, since the framework cannot see a rejected promise.
   */
  private handle(endpoint: OpsEndpointDef, msg: ServiceMsg): void {
    let req: unknown;
    try {
      req = parseOpsRequest(endpoint.schema, msg.data, endpoint.subject);
    } catch (err) {
      const { code, description } = toOpsFailure(err);
      throw new ServiceError(code, description);
    }
    const work = endpoint
      .run(this.ctx, req)
      .then(
        (reply) => {
          msg.respond(JSON.stringify(reply));
        },
        (err: unknown) => {
          const { code, description } = toOpsFailure(err);
          if (code >= 500) this.log.warn({ err, endpoint: endpoint.subject }, "ops request failed");
          this.countError(endpoint.name, new Error(description));
          msg.respondError(code, description);
        },
      )
      .catch((err: unknown) => this.log.warn({ err, endpoint: endpoint.subject }, "ops reply not sent"))
      .finally(() => this.inFlight.delete(work));
    this.inFlight.add(work);
  }

  /** Ordered, idempotent: stop answering → let requests under way answer (bounded) → drain. */
  stop(_reason?: string): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.service?.stop();
      } catch (err) {
        this.log.warn({ err }, "stopping the ops service failed");
      }
      await Promise.race([Promise.allSettled([...this.inFlight, this.waiting?.stop()]), new Promise((r) => setTimeout(r, 5_000).unref())]);
      await closeConnection(this.nc);
      this.log.info("ops stopped");
    })().finally(() => this.markStopped());
    return this.stopping;
  }

  private markStopped!: () => void;
  private readonly whenStopped = new Promise<void>((resolve) => (this.markStopped = resolve));

  stopped(): Promise<void> {
    return this.whenStopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

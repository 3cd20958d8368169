/**
 * The worker host. Its lifecycle is `machines/worker.machine.ts` (booting → checking → serving ⇄
 * paused → draining → stopped | failed); each login it serves has an auth machine (logins.ts);
 * each job a job machine (job-effects.ts). This file wires them to NATS: the dispatcher that takes
 * jobs from its shards (dispatch.ts), heartbeats into KV `workers`, status events, and the ordered stop.
 */
import { readFileSync } from "node:fs";
import { jetstream, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { Service } from "@nats-io/services";
import { transitionInspector, type MachineTransition } from "../../src/machine-state.js";
import { createActor, fromPromise, toPromise, waitFor, type Actor } from "xstate";
import type { AuthAnnouncement } from "../../machines/auth.machine.js";
import { workerMachine, type StartupReport } from "../../machines/worker.machine.js";
import type { Config } from "../../src/config.js";
import { ConfigError, MoonmindError } from "../../src/errors.js";
import { followConnected, whileJetStreamAway } from "../../src/nats/connect.js";
import { StatusPublisher } from "../../src/events.js";
import type { Logger } from "../../src/logger.js";
import { RunStore } from "../../src/runs/store.js";
import { createAdapter, type AdapterDeps } from "../../src/runtimes/index.js";
import type { LoginVolume, RuntimeAdapter } from "../../src/runtimes/types.js";
import { WorkerRecordSchema, type WorkerRecord } from "../../src/schemas/events.js";
import type { Runtime } from "../../src/schemas/runtime.js";
import { parseJson } from "../../src/json.js";
import { startupProblems } from "../../src/startup.js";
import { resolveAgentUser } from "../../src/runtimes/agent-user.js";
import { BUCKETS, OBJECT_STORES, STREAMS, shardConsumer, shardSubject } from "../../src/subjects.js";
import { VERSION } from "../../src/version.js";
import { WorkspaceManager } from "../../src/workspace/git.js";
import { startControl } from "./control.js";
import { WorkerCredentials } from "./credentials.js";
import type { JobDeps } from "./job-effects.js";
import { Dispatcher } from "./dispatch.js";
import { isolateAgents, sweepWorkspaces } from "./hygiene.js";
import { setTimeout as sleep } from "node:timers/promises";
import { startJob, type RunningJob } from "./run-job.js";
import { Login, loginKey } from "./logins.js";
import { Slots } from "./slots.js";

export class Worker implements AsyncDisposable {
  private readonly js: JetStreamClient;
  private readonly publisher: StatusPublisher;
  private readonly slots: Slots;
  private readonly running = new Map<string, RunningJob>();
  private readonly loops: Promise<void>[] = [];
  private dispatcher: Dispatcher | undefined;
  private readonly logins = new Map<string, Login>();
  private readonly bindingLogin = new Map<string, Login>();
  private readonly versions: Record<string, string> = {};
  private readonly stopController = new AbortController();
  private readonly machine: Actor<ReturnType<typeof this.provideMachine>>;
  private runs!: RunStore;
  private workers!: KV;
  private deps!: Omit<JobDeps, "login">;
  private control: Service | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  /** startServing under way: a stop waits for it before it takes anything down. */
  private serving: Promise<void> | undefined;
  private booted = false;
  private readonly connected: () => boolean;
  private markStopped!: () => void;
  private readonly whenStopped = new Promise<void>((resolve) => (this.markStopped = resolve));
  private drained: Promise<void> | undefined;
  private readonly startedAt = new Date().toISOString();
  private readonly credentials: WorkerCredentials;

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: Config,
    private readonly log: Logger,
    overrides: AdapterDeps = {},
  ) {
    this.js = jetstream(nc);
    this.publisher = new StatusPublisher(this.js);
    this.slots = new Slots(config.env.MOONMIND_WORKER_CONCURRENCY);
    this.connected = followConnected(nc);
    this.credentials = new WorkerCredentials(nc, config.workerId, config.env.MOONMIND_STREAM_REPLICAS, log);
    const adapterDeps: AdapterDeps = {
      writer: this.credentials.writer,
      ...(config.env.MOONMIND_TOKEN_BROKER ? { codexBroker: (v: LoginVolume) => this.credentials.brokerUrl(v) } : {}),
      ...overrides,
    };
    const adapters = new Map<Runtime, RuntimeAdapter>();
    for (const binding of config.workerShards) {
      const adapter = adapters.get(binding.runtime) ?? createAdapter(binding.runtime, config, adapterDeps);
      adapters.set(binding.runtime, adapter);
      const volume = adapter.volumeFor(binding.shard);
      const key = loginKey(binding.runtime, volume);
      let login = this.logins.get(key);
      if (!login) {
        const env = config.env;
        const settings = {
          ttlMs: env.MOONMIND_AUTH_TTL_MS,
          recheckMs: Math.min(env.MOONMIND_AUTH_TTL_MS, 30_000),
          limitBackoffMs: env.MOONMIND_USAGE_LIMIT_BACKOFF_MS,
        };
        const inspect = transitionInspector("auth", (t) => this.publishState({ machine: "auth", login: key, ...t }));
        login = new Login(adapter, volume, settings, (l, a) => this.announce(l, a), log, inspect);
        this.logins.set(key, login);
      }
      login.bindings.push(binding);
      this.bindingLogin.set(shardConsumer(binding.runtime, binding.shard), login);
    }
    this.machine = createActor(this.provideMachine(), {
      input: { logins: [...this.logins.keys()], strict: config.env.MOONMIND_STARTUP_STRICT },
      inspect: transitionInspector("worker", (t) => this.publishState({ machine: "worker", ...t })),
    });
  }

  get id(): string {
    return this.config.workerId;
  }

  /** The worker machine's state: booting, checking, serving, paused, draining, stopped or failed. */
  get state(): string {
    const value = String(this.machine.getSnapshot().value);
    return value === "running" ? "serving" : value;
  }

  /**
   * Boots and runs the start-up checks. Resolves serving (or paused: nothing lost, jobs wait), or
   * stopped when a stop came during start-up; throws ConfigError (exit 78) when strict start-up
   * finds a required login missing, and MoonmindError when serving could not start.
   */
  async start(): Promise<void> {
    const kvm = new Kvm(this.nc);
    const wait = { waitMs: this.config.env.MOONMIND_CONNECT_WAIT_MS, signal: this.stopController.signal, log: this.log };
    this.runs = new RunStore(await whileJetStreamAway(`kv ${BUCKETS.runs}`, () => kvm.open(BUCKETS.runs), wait));
    this.workers = await whileJetStreamAway(`kv ${BUCKETS.workers}`, () => kvm.open(BUCKETS.workers), wait);
    const artifacts = await whileJetStreamAway(`object store ${OBJECT_STORES.artifacts}`, () => new Objm(this.nc).open(OBJECT_STORES.artifacts), wait);
    const env = this.config.env;
    const agentUser = resolveAgentUser(env.MOONMIND_AGENT_USER);
    this.deps = {
      workerId: this.id,
      nc: this.nc,
      runs: this.runs,
      artifacts,
      publisher: this.publisher,
      workspaces: new WorkspaceManager({
        workdir: this.config.workdir,
        gitBaseUrl: env.MOONMIND_GIT_BASE_URL,
        allowLocalRepos: env.MOONMIND_ALLOW_LOCAL_REPOS,
        keep: env.MOONMIND_KEEP_WORKSPACES,
        agentOwned: agentUser !== undefined,
      }),
      holdsRun: (holder, jobId, claimedAt) => this.holdsRun(holder, jobId, claimedAt),
      silentSince: new Map(),
      agentUser,
      log: this.log,
      settings: {
        jobTimeoutMs: env.MOONMIND_JOB_TIMEOUT_MS,
        killGraceMs: env.MOONMIND_KILL_GRACE_MS,
        workerTtlMs: env.MOONMIND_WORKER_TTL_MS,
        logBatchMs: env.MOONMIND_LOG_BATCH_MS,
        logBatchLines: env.MOONMIND_LOG_BATCH_LINES,
        // A finished agent's result is kept for as long as its agent was allowed to run.
        storeRetryMs: env.MOONMIND_JOB_TIMEOUT_MS,
        gitAuthor: { name: env.MOONMIND_GIT_AUTHOR_NAME, email: env.MOONMIND_GIT_AUTHOR_EMAIL },
        forgeApiUrl: env.MOONMIND_FORGE_API_URL,
        pushToken: () => readPushToken(env.MOONMIND_GIT_PUSH_TOKEN, env.MOONMIND_GIT_PUSH_TOKEN_FILE),
      },
    };
    if (this.stopping) return;
    this.booted = true;
    this.machine.start();
    this.machine.send({ type: "BOOTED" });
    const s = await waitFor(this.machine, (snap) => snap.matches("serving") || snap.matches("paused") || snap.status === "done");
    // Say so at once: until the next heartbeat the record would still say `starting`, and intake
    // and ops would tell jobs that no ready worker serves them.
    if (!s.matches("failed") && s.status !== "done") await this.beat().catch((err: unknown) => this.log.warn({ err }, "heartbeat failed"));
    if (s.matches("failed")) {
      const failure = s.context.failure ?? "start-up checks failed";
      await this.drain(failure);
      if (failure.startsWith("could not start serving")) {
        throw new MoonmindError(`worker ${this.id} ${failure}`, { remedy: "check that NATS is reachable (NATS_URL) and start the worker again" });
      }
      throw new ConfigError(`worker ${this.id} cannot serve:\n  ${failure.split("\n").join("\n  ")}`, {
        remedy: "fix the above, or set MOONMIND_STARTUP_STRICT=false to start paused and resume once logins appear",
      });
    }
  }

  private provideMachine() {
    return workerMachine.provide({
      actors: {
        startupChecks: fromPromise(() => this.startupChecks()),
        startServing: fromPromise(({ input, signal }) => (this.serving = this.startServing(input.paused, signal))),
        drain: fromPromise(({ input }) => this.drain(input.reason)),
      },
      actions: {
        pauseLogin: (_, { login, reason }) => this.pauseLogin(login, reason),
        resumeLogin: (_, { login }) => this.resumeLogin(login),
      },
    });
  }

  private async startupChecks(): Promise<StartupReport> {
    for (const adapter of new Set([...this.logins.values()].map((l) => l.adapter))) {
      const version = await adapter.version();
      this.versions[adapter.runtime] = version ?? "unknown";
      this.log.info({ runtime: adapter.runtime, bin: adapter.bin, version }, "agent CLI");
    }
    const problems = startupProblems(this.config);
    this.deps.sandbox = await isolateAgents({
      env: this.config.env,
      workdir: this.config.workdir,
      agentUser: this.deps.agentUser,
      volumePaths: [...this.logins.values()].map((l) => l.volume.path),
      problems,
      log: this.log,
    });
    for (const login of this.logins.values()) {
      try {
        await login.adapter.prepareVolume(login.volume);
        if (login.adapter.runtime === "codex" && this.config.env.MOONMIND_TOKEN_BROKER) {
          // Its lock bucket is on JetStream: a moment without it is waited out, not a login problem.
          await whileJetStreamAway(
            "the token broker",
            () => this.credentials.startBroker(login.volume, this.config.env.MOONMIND_CODEX_REFRESH_URL),
            { waitMs: this.config.env.MOONMIND_CONNECT_WAIT_MS, signal: this.stopController.signal, log: this.log },
          );
        }
      } catch (err) {
        problems.push(`${login.key}: cannot prepare volume ${login.volume.path}: ${(err as Error).message}`);
      }
      login.start();
    }
    await Promise.all([...this.logins.values()].map((l) => l.settled()));
    for (const login of this.logins.values()) {
      login.slots = new Slots(await login.adapter.maxParallel(login.volume));
    }
    const notReady = [...this.logins.values()]
      .filter((l) => !l.ready)
      .map((l) => ({ login: l.key, message: l.auth.getSnapshot().context.last?.result.message ?? l.adapter.remedy(l.volume) }));
    for (const p of problems) this.log.error({ problem: p }, "start-up check failed");
    return { notReady, problems };
  }

  private async startServing(paused: string[], signal: AbortSignal): Promise<void> {
    const step = async <T>(work: Promise<T>): Promise<T> => {
      const value = await work;
      if (signal.aborted) throw new Error("stopped while starting");
      return value;
    };
    // Steps that need JetStream wait out a moment without it (a restart, a cluster electing new
    // leaders after losing a node) rather than fail the start, bounded like the first connect.
    const wait = { waitMs: this.config.env.MOONMIND_CONNECT_WAIT_MS, signal, log: this.log };
    const patiently = <T>(what: string, work: () => Promise<T>) => step(whileJetStreamAway(what, work, wait));
    for (const key of paused) this.pauseLogin(key, this.logins.get(key)?.auth.getSnapshot().context.last?.result.message ?? "not logged in");
    await patiently("the workspace sweep", () =>
      sweepWorkspaces({ workspaces: this.deps.workspaces, runs: this.runs, workerId: this.id, isWorkerAlive: (id) => this.isWorkerAlive(id), log: this.log }),
    );
    await patiently("the first heartbeat", () => this.beat());
    await patiently("the online event", () =>
      this.publisher.worker(this.id, {
        type: "online",
        runtimes: this.config.workerRuntimes,
        shards: this.config.workerShards.map((b) => shardConsumer(b.runtime, b.shard)),
        concurrency: this.config.env.MOONMIND_WORKER_CONCURRENCY,
        version: VERSION,
      }),
    );
    this.heartbeat = setInterval(() => {
      this.beat().catch((err: unknown) => this.log.warn({ err }, "heartbeat failed"));
    }, this.config.env.MOONMIND_HEARTBEAT_MS);
    this.control = await step(
      startControl(
        this.nc,
        {
          id: this.id,
          runtimes: this.config.workerRuntimes,
          logins: () => [...this.logins.values()],
          stop: (r) => this.stop(r),
          cancel: (jobId, reason) => {
            const job = this.running.get(jobId);
            job?.actor.send({ type: "CANCEL", reason });
            return job !== undefined;
          },
        },
        this.log,
      ),
    );
    // Each bound consumer must exist (provisioned) before the worker says it serves.
    for (const binding of this.config.workerShards) {
      const consumer = shardConsumer(binding.runtime, binding.shard);
      await patiently(`consumer ${consumer}`, () => this.js.consumers.get(STREAMS.jobs, consumer));
    }
    this.dispatcher = new Dispatcher({
      nc: this.nc,
      stream: STREAMS.jobs,
      shards: this.config.workerShards.map((b) => ({
        consumer: shardConsumer(b.runtime, b.shard),
        subject: shardSubject(b.runtime, b.shard),
        login: this.bindingLogin.get(shardConsumer(b.runtime, b.shard))!,
      })),
      workerSlots: this.slots,
      signal: this.stopController.signal,
      sweepMs: this.config.env.MOONMIND_PULL_EXPIRES_MS,
      log: this.log,
      run: (login, msg) => this.runJob(login, msg),
    });
    this.loops.push(this.dispatcher.run());
    this.log.info({ logins: [...this.logins.keys()], paused, concurrency: this.config.env.MOONMIND_WORKER_CONCURRENCY }, "worker serving");
  }

  /** A worker or auth machine's transition, for the live view; losing one costs a frame, not a job. */
  private publishState(body: { machine: "worker" | "auth"; login?: string } & MachineTransition): void {
    this.publisher.worker(this.id, { type: "state", ...body }).catch((err: unknown) => this.log.debug({ err }, "state event not published"));
  }

  /** Every result of a login check: published, recorded, and turned into pause or resume. */
  private announce(login: Login, a: AuthAnnouncement): void {
    const r = a.result;
    this.publisher
      .worker(this.id, {
        type: "preflight",
        runtime: login.adapter.runtime,
        status: r.status,
        message: r.message,
        checkedAt: r.checkedAt,
        ...(r.volume ? { volume: r.volume } : {}),
      })
      .catch((err: unknown) => this.log.warn({ err }, "preflight event not published"));
    this.log.info({ login: login.key, state: a.state, message: r.message }, "login check");
    this.machine.send(a.state === "ready" ? { type: "LOGIN_READY", login: login.key } : { type: "LOGIN_LOST", login: login.key, reason: r.message });
    if (this.heartbeat) this.beat().catch(() => undefined);
  }

  private pauseLogin(key: string, reason: string): void {
    const login = this.logins.get(key);
    if (!login || login.paused) return;
    login.pause();
    this.log.warn({ login: key, reason }, "pausing the login's shards: its jobs wait in the stream");
    this.publisher
      .worker(this.id, { type: "paused", runtime: login.adapter.runtime, volume: login.volume.name, shards: this.shardNames(login), reason })
      .catch((err: unknown) => this.log.warn({ err }, "paused event not published"));
  }

  private resumeLogin(key: string): void {
    const login = this.logins.get(key);
    if (!login || !login.paused) return;
    login.resume();
    this.dispatcher?.poke();
    this.log.info({ login: key }, "resuming the login's shards");
    this.publisher
      .worker(this.id, { type: "resumed", runtime: login.adapter.runtime, volume: login.volume.name, shards: this.shardNames(login) })
      .catch((err: unknown) => this.log.warn({ err }, "resumed event not published"));
  }

  private shardNames(login: Login): string[] {
    return login.bindings.map((b) => shardConsumer(b.runtime, b.shard));
  }

  /** Jobs currently running on this worker. */
  inFlight(): string[] {
    return [...this.running.keys()];
  }

  private runJob(login: Login, msg: JsMsg): Promise<void> {
    const running = startJob({ ...this.deps, login }, msg, this.config.env, this.log, (id) => this.running.get(id));
    if (!running) return Promise.resolve();
    this.running.set(running.jobId, running);
    return running.done.finally(() => this.running.delete(running.jobId));
  }

  private async isWorkerAlive(workerId: string): Promise<boolean> {
    return (await this.liveRecord(workerId)) !== undefined;
  }

  /** The worker's KV record while it is alive: not stopped, and a heartbeat within its TTL. */
  private async liveRecord(workerId: string): Promise<WorkerRecord | undefined> {
    const entry = await this.workers.get(workerId);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    const record = WorkerRecordSchema.safeParse(parseJson(entry.value));
    if (!record.success || record.data.state === "stopped") return undefined;
    return Date.now() - Date.parse(record.data.heartbeatAt) < this.config.env.MOONMIND_WORKER_TTL_MS ? record.data : undefined;
  }

  /**
   * Whether `holder` still holds the run: alive, unless it is a later life of that id — a worker
   * restarted under its old id, as a container keeps it — that started after the run was claimed
   * and does not list it in flight. That life does not run it and never will (a delivery to it
   * would), so the run is treated as its dead life's: taken over after the silence wait. Both
   * conditions are needed: the start time alone would trust the holder's clock, and the list
   * alone lags a fresh claim by up to one heartbeat.
   */
  private async holdsRun(holder: string, jobId: string, claimedAt: string | undefined): Promise<boolean> {
    const record = await this.liveRecord(holder);
    if (!record) return false;
    const laterLife = claimedAt !== undefined && Date.parse(record.startedAt) > Date.parse(claimedAt);
    return !(laterLife && !record.inFlight.includes(jobId));
  }

  private async beat(): Promise<void> {
    const auth: WorkerRecord["auth"] = {};
    for (const login of this.logins.values()) {
      const snap = login.auth.getSnapshot();
      const r = snap.context.last?.result;
      auth[login.key] = { state: String(snap.value), status: r?.status ?? "skipped", message: r?.message ?? "", checkedAt: r?.checkedAt ?? "" };
    }
    const record: WorkerRecord = {
      workerId: this.id,
      runtimes: this.config.workerRuntimes,
      shards: this.config.workerShards.map((b) => shardConsumer(b.runtime, b.shard)),
      concurrency: this.config.env.MOONMIND_WORKER_CONCURRENCY,
      inFlight: this.inFlight(),
      state: this.state,
      auth,
      versions: this.versions,
      version: VERSION,
      startedAt: this.startedAt,
      heartbeatAt: new Date().toISOString(),
    };
    await this.workers.put(this.id, JSON.stringify(record));
    if (this.state === "serving" || this.state === "paused") {
      await this.publisher.worker(this.id, { type: "heartbeat", inFlight: record.inFlight });
    }
  }

  /** Ordered and idempotent: a second call awaits the first. */
  stop(reason = "stopped"): Promise<void> {
    this.stopping ??= (async () => {
      const snap = this.machine.getSnapshot();
      if (this.booted && snap.status === "active") {
        this.machine.send({ type: "DRAIN", reason });
        await toPromise(this.machine);
      }
      // Never started, or failed: the drain (idempotent) releases what is left.
      await this.drain(reason);
    })().finally(() => this.markStopped());
    return this.stopping;
  }

  /** Settles once the worker has stopped, whoever stopped it (a signal, `worker.<id>.drain`). */
  stopped(): Promise<void> {
    return this.whenStopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * stop pulling → settle running jobs (finish or hand back) → deregister → drain the connection.
   * Idempotent. Steps that talk to NATS are bounded, so a stop with the server gone still ends.
   */
  private drain(reason: string): Promise<void> {
    return (this.drained ??= this.drainOnce(reason));
  }

  private async drainOnce(reason: string): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown> | unknown, boundMs = 5_000, needsServer = true) => {
      if (needsServer && !this.connected()) {
        this.log.warn({ step: name }, "stop step skipped: the NATS server is unreachable");
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          fn(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`gave up after ${boundMs} ms`)), boundMs);
          }),
        ]);
      } catch (err) {
        this.log.warn({ err, step: name }, "stop step failed; continuing");
      } finally {
        clearTimeout(timer);
      }
    };
    await this.serving?.catch(() => undefined);
    await step("announce draining", () => this.publisher.worker(this.id, { type: "draining", inFlight: this.inFlight() }));
    await step("stop pulling", async () => {
      this.stopController.abort();
      await Promise.allSettled(this.loops);
    }, this.config.env.MOONMIND_PULL_EXPIRES_MS + 5_000, false);
    await step("settle running jobs", async () => {
      const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
      const grace = this.config.env.MOONMIND_STOP_GRACE_MS;
      if (this.running.size > 0) this.log.info({ jobs: this.inFlight(), graceMs: grace }, "waiting for running jobs");
      const finished = await Promise.race([all.then(() => true), sleep(grace).then(() => false)]);
      if (!finished) {
        for (const [jobId, r] of this.running) {
          this.log.warn({ jobId }, "handing a running job back");
          r.actor.send({ type: "RELEASE", reason: `worker ${this.id} is stopping` });
        }
        await all;
      }
    }, this.config.env.MOONMIND_STOP_GRACE_MS + this.config.env.MOONMIND_KILL_GRACE_MS + 15_000, false);
    clearInterval(this.heartbeat);
    for (const login of this.logins.values()) login.stop();
    await step("stop token brokers", () => this.credentials.stop(), 5_000, false);
    await step("stop control service", () => this.control?.stop());
    await step("deregister", () => this.workers?.delete(this.id));
    await step("announce offline", () => this.publisher.worker(this.id, { type: "offline", reason }));
    // Local only, and after the worker is gone from the directory: a job it handed back says at once
    // that no worker serves its shard, rather than that a worker still listed is not ready.
    await step("remove finished workspaces", () => this.deps?.workspaces.removals(), 30_000, false);
    await step("drain connection", () => this.nc.drain());
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    this.log.info({ reason }, "worker stopped");
  }
}

/** The push token: MOONMIND_GIT_PUSH_TOKEN, else the first line of MOONMIND_GIT_PUSH_TOKEN_FILE (read each push, so a rotated file is picked up). */
function readPushToken(token: string | undefined, file: string | undefined): string | undefined {
  if (token) return token;
  if (!file) return undefined;
  return readFileSync(file, "utf8").split("\n")[0]?.trim() || undefined;
}

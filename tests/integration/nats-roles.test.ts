/**
 * The repository's nats.conf on a real nats-server: every actor runs under its own role's login
 * and a job still goes all the way through, and each role is refused what it should not do (a
 * submitter routing, cancelling or reading run records; a worker submitting; viz publishing).
 * Refusals are read from the server's own answer (a permissions violation), not from a timeout.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Intake } from "../../actors/intake/intake.js";
import { Ops } from "../../actors/ops/ops.js";
import { VizServer } from "../../src/viz/server.js";
import { Worker } from "../../actors/worker/worker.js";
import { loadConfig, type Config } from "../../src/config.js";
import { connectNats } from "../../src/nats/connect.js";
import { permissionViolation } from "../../src/nats/errors.js";
import { provision } from "../../src/nats/provision.js";
import { startNatsServer, type NatsServer } from "../../src/nats/server.js";
import { PROJECT_ROOT } from "../../src/paths.js";
import { BUCKETS, OPS, SUBJECTS, jobEventFilter } from "../../src/subjects.js";
import { FAKE_CODEX, makeRepo, quietLog } from "../helpers/stack.js";

const ROLES = ["submitter", "intake", "worker", "ops", "operator", "viz"] as const;
type Role = (typeof ROLES)[number];
const password = (role: Role) => `test-${role}-password`;

let dir: string;
let server: NatsServer;
let repo: string;
/** Reads every event (the operator's login), for the tests to wait on. */
let watcher: NatsConnection;
const started: Array<{ stop(): Promise<unknown> }> = [];
const connections: NatsConnection[] = [];

function roleUrl(role: Role): string {
  const url = new URL(server.url);
  url.username = role;
  url.password = password(role);
  return url.toString();
}

async function login(role: Role): Promise<NatsConnection> {
  const nc = await connectNats({ servers: roleUrl(role), name: `test-${role}` });
  connections.push(nc);
  return nc;
}

function configEnv(): Record<string, string> {
  return {
    MOONMIND_DATA_DIR: join(dir, "var"),
    MOONMIND_LOG_LEVEL: "warn",
    MOONMIND_CODEX_BIN: FAKE_CODEX,
    CODEX_VOLUME_PATH: join(dir, "codex-auth"),
    MOONMIND_ALLOW_LOCAL_REPOS: "true",
    MOONMIND_HEARTBEAT_MS: "300",
    MOONMIND_RETRY_BACKOFF_MS: "100",
    MOONMIND_STOP_GRACE_MS: "1000",
    MOONMIND_KILL_GRACE_MS: "500",
  };
}

function configFor(role: Role, more: Record<string, string> = {}): Config {
  return loadConfig({ ...configEnv(), NATS_URL: roleUrl(role), ...more });
}

/** What a deployed actor does: log in as its role, check (or make) the streams, start. */
async function startActor<A extends { start(): Promise<void>; stop(): Promise<unknown> }>(
  role: Role,
  make: (nc: NatsConnection, config: Config) => A,
  more: Record<string, string> = {},
): Promise<A> {
  const config = configFor(role, more);
  const nc = await connectNats({ servers: roleUrl(role), name: role });
  await provision(nc, config);
  const actor = make(nc, config);
  await actor.start();
  started.unshift(actor);
  return actor;
}

const BIN = join(PROJECT_ROOT, "src/cli/bin.mjs");

/** One `moonmind` command, as a person runs it, under the login its NATS_URL names. */
function moonmind(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...configEnv(), ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function waitForEvent(nc: NatsConnection, jobId: string, type: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event of ${jobId} within ${timeoutMs} ms`)), timeoutMs);
    const sub = nc.subscribe(`status.jobs.${jobId}.${type}`, {
      max: 1,
      callback: () => {
        clearTimeout(timer);
        resolve();
      },
    });
    void sub;
  });
}

/** Resolves with the server's refusal of `subject` on this connection. */
function refusal(nc: NatsConnection, subject: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no refusal of ${subject} within ${timeoutMs} ms`)), timeoutMs);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "error" && s.error.name === "PermissionViolationError" && (s.error as { subject?: string }).subject === subject) {
          clearTimeout(timer);
          resolve(s.error.message);
          return;
        }
      }
    })();
  });
}

async function publishRefused(nc: NatsConnection, subject: string): Promise<string> {
  const refused = refusal(nc, subject);
  nc.publish(subject, "{}");
  return refused;
}

async function requestRefused(nc: NatsConnection, subject: string): Promise<string> {
  const err = await nc.request(subject, "{}", { timeout: 5_000 }).then(
    () => undefined,
    (e: Error) => e,
  );
  const refused = permissionViolation(err);
  expect(refused?.subject, `${subject}: ${err?.message}`).toBe(subject);
  return refused!.message;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "moonmind-roles-"));
  const env = { ...process.env };
  for (const role of ROLES) env[`MOONMIND_NATS_${role.toUpperCase()}_PASSWORD`] = password(role);
  server = await startNatsServer({ baseConf: join(PROJECT_ROOT, "nats.conf"), env, logFile: join(dir, "nats.log") });
  repo = await makeRepo(join(dir, "repo"));
  watcher = await login("operator");
  const volume = join(dir, "codex-auth");
  await import("node:fs/promises").then(async (fs) => {
    await fs.mkdir(volume);
    await fs.writeFile(join(volume, "auth.json"), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "stand-in" }), { mode: 0o600 });
  });
}, 30_000);

afterAll(async () => {
  for (const actor of started) await actor.stop();
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe("nats.conf roles", () => {
  it("has no anonymous login", async () => {
    const err = await connectNats({ servers: server.url, name: "anonymous" }).then(
      (nc) => nc.close().then(() => undefined),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/refused the login/);
  });

  it("refuses a worker that would provision the streams before intake made them", async () => {
    const nc = await login("worker");
    const err = await provision(nc, configFor("worker")).then(() => undefined, (e: Error) => e);
    expect(err?.name).toBe("ConfigError");
    expect(err?.message).toMatch(/may not create/);
    expect((err as { remedy?: string }).remedy).toMatch(/intake/);
  });

  it("runs a job through intake, ops and a worker, each under its own role, submitted by a submitter", async () => {
    await startActor("intake", (nc, config) => new Intake(nc, config, quietLog));
    await startActor("ops", (nc, config) => new Ops(nc, config, quietLog));
    await startActor("worker", (nc, config) => new Worker(nc, config, quietLog), { MOONMIND_WORKER_ID: "w-roles" });

    const submitter = await login("submitter");
    const jobId = "roles-job-1";
    const ended = new Promise<string>((resolve) => {
      const sub = submitter.subscribe(jobEventFilter(jobId), {
        callback: (_err, msg) => {
          const type = msg.subject.split(".").at(-1)!;
          if (type === "succeeded" || type === "failed" || type === "rejected") {
            sub.unsubscribe();
            resolve(type === "succeeded" ? type : `${type}: ${msg.string()}`);
          }
        },
      });
    });
    await submitter.flush();
    const job = { id: jobId, repository: repo, runtime: "codex", instructions: "add a line to README.md" };
    await jetstream(submitter).publish(SUBJECTS.submit, JSON.stringify(job), { msgID: `submit-${jobId}` });
    expect(await ended).toBe("succeeded");

    // The submitter reads its run through ops, not through the bucket.
    const reply = await submitter.request(OPS.runsGet, JSON.stringify({ runId: jobId }), { timeout: 5_000 });
    expect((reply.json() as { record?: { state?: string } }).record?.state).toBe("succeeded");
  }, 60_000);

  it("serves the moonmind verbs under the submitter's and the operator's logins", async () => {
    const asSubmitter = { NATS_URL: roleUrl("submitter") };
    const submitted = await moonmind(asSubmitter, "submit", "--json", "--wait", "--id", "roles-cli-1", "-r", repo, "-i", "write NOTES.md: from the cli");
    expect(submitted.code, submitted.stderr).toBe(0);
    const patch = await moonmind(asSubmitter, "artifacts", "roles-cli-1", "patch");
    expect(patch.stdout).toContain("+from the cli");
    // A follow-up: intake reads the earlier record, the worker its record and patch, each under its own role.
    const followed = await moonmind(asSubmitter, "submit", "--json", "--wait", "--id", "roles-cli-1b", "-r", repo, "-i", "write MORE.md: and more", "--resume", "roles-cli-1");
    expect(followed.code, followed.stderr).toBe(0);
    expect((await moonmind(asSubmitter, "artifacts", "roles-cli-1b", "patch")).stdout).toContain("+and more");
    const logs = await moonmind(asSubmitter, "logs", "roles-cli-1");
    expect(logs.code, logs.stderr).toBe(0);
    const run = await moonmind(asSubmitter, "runs", "get", "roles-cli-1", "--json");
    expect(JSON.parse(run.stdout).record.state).toBe("succeeded");
    expect((await moonmind(asSubmitter, "shards")).code).toBe(0);
    const refused = await moonmind(asSubmitter, "runs", "cancel", "roles-cli-1");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/may not ask ops\.runs\.cancel/);
    expect(refused.stderr).toMatch(/operator/);

    // A running job, cancelled by the operator through ops and the worker's control endpoint.
    const asOperator = { NATS_URL: roleUrl("operator") };
    const started = waitForEvent(watcher, "roles-cli-2", "started");
    const sleeping = await moonmind(asSubmitter, "submit", "--id", "roles-cli-2", "-r", repo, "-i", "sleep 30000");
    expect(sleeping.code, sleeping.stderr).toBe(0);
    await started;
    const cancelled = waitForEvent(watcher, "roles-cli-2", "cancelled");
    const cancel = await moonmind(asOperator, "runs", "cancel", "roles-cli-2");
    expect(cancel.code, cancel.stderr).toBe(0);
    await cancelled;
    const retry = await moonmind(asOperator, "runs", "retry", "roles-cli-2", "--json");
    expect(retry.code, retry.stderr).toBe(0);
  }, 90_000);

  it("refused the actors and the verbs nothing they needed", async () => {
    const log = await readFile(join(dir, "nats.log"), "utf8");
    expect(log).toMatch(/Server is ready/);
    const violations = log.split("\n").filter((line) => /Permissions Violation/.test(line) && !/ops\.runs\.cancel/.test(line));
    expect(violations, "the actors were refused something they need").toEqual([]);
  });

  it("refuses a submitter routing, cancelling, retrying and reading run records", async () => {
    const nc = await login("submitter");
    expect(await publishRefused(nc, "jobs.codex.shard.0")).toMatch(/Permissions Violation for Publish/);
    expect(await publishRefused(nc, "status.jobs.x.succeeded")).toMatch(/Publish/);
    await requestRefused(nc, OPS.runsCancel);
    await requestRefused(nc, OPS.runsRetry);
    await requestRefused(nc, OPS.deadReplay);
    await requestRefused(nc, `$JS.API.STREAM.INFO.KV_${BUCKETS.runs}`);
    await requestRefused(nc, `$JS.API.DIRECT.GET.KV_${BUCKETS.runs}.$KV.${BUCKETS.runs}.roles-job-1`);
    await requestRefused(nc, "$JS.API.CONSUMER.MSG.NEXT.JOBS.codex-shard-0");
    const kv = await new Kvm(nc).open(BUCKETS.runs);
    const read = await kv.get("roles-job-1").then(() => undefined, (e: Error) => e);
    expect(permissionViolation(read)?.subject).toMatch(new RegExp(`KV_${BUCKETS.runs}`));
  });

  it("refuses a worker submitting jobs or pulling intake's consumer", async () => {
    const nc = await login("worker");
    expect(await publishRefused(nc, SUBJECTS.submit)).toMatch(/Publish to "jobs.submit"/);
    expect(await publishRefused(nc, "jobs.codex.shard.0")).toMatch(/Publish/);
    await requestRefused(nc, "$JS.API.CONSUMER.MSG.NEXT.JOBS.intake");
    await requestRefused(nc, OPS.runsCancel);
    await requestRefused(nc, "$JS.API.STREAM.DELETE.JOBS");
  });

  it("serves the live view under the viz role: its model, the ops API and an action relayed", async () => {
    const nc = await connectNats({ servers: roleUrl("viz"), name: "viz" });
    const viz = new VizServer(nc, configFor("viz", { MOONMIND_VIZ_PORT: "0", MOONMIND_DATA_DIR: join(dir, "viz") }), quietLog);
    await viz.start();
    started.unshift(viz);
    const get = async (path: string) => (await fetch(new URL(path, viz.url))).json() as Promise<Record<string, unknown>>;
    await vi.waitFor(async () => {
      const live = (await get("api/live")) as { workers: Array<{ workerId: string }>; jobs: Array<{ jobId: string; record?: { state: string } }> };
      expect(live.workers.map((w) => w.workerId)).toContain("w-roles");
      expect(live.jobs.find((j) => j.jobId === "roles-job-1")?.record?.state).toBe("succeeded");
    }, { timeout: 10_000, interval: 100 });
    expect(await get("api/shards")).toHaveProperty("shards");
    const cancel = await fetch(new URL("api/runs/roles-job-1/cancel", viz.url), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(cancel.status).toBe(409); // ops answered: it has ended already
    expect(await cancel.json()).toMatchObject({ code: 409, error: expect.stringMatching(/succeeded already/) });
  });

  it("refuses viz every publish but its reads and its page's actions", async () => {
    const nc = await login("viz");
    for (const subject of [SUBJECTS.submit, "jobs.codex.shard.0", "status.jobs.x.succeeded", "logs.jobs.x", "dead.jobs.x", `$KV.${BUCKETS.runs}.x`]) {
      expect(await publishRefused(nc, subject)).toMatch(/Permissions Violation for Publish/);
    }
    await requestRefused(nc, OPS.deadReplay);
    await requestRefused(nc, "worker.w-1.cancel");
    await requestRefused(nc, "$JS.API.STREAM.DELETE.STATUS");
    // The page's actions go through ops: a cancel of a run that does not exist is ops' own 404.
    const cancel = await nc.request(OPS.runsCancel, JSON.stringify({ runId: "no-such-run" }), { timeout: 5_000 });
    expect(cancel.headers?.get("Nats-Service-Error-Code")).toBe("404");
    const shards = await nc.request(OPS.shards, "{}", { timeout: 5_000 });
    expect(shards.json()).toHaveProperty("shards");
  });

  it("refuses the operator writing streams directly", async () => {
    const nc = await login("operator");
    expect(await publishRefused(nc, "jobs.codex.shard.0")).toMatch(/Publish/);
    expect(await publishRefused(nc, "status.jobs.x.succeeded")).toMatch(/Publish/);
    await requestRefused(nc, "$JS.API.STREAM.DELETE.JOBS");
    await requestRefused(nc, "$JS.API.CONSUMER.MSG.NEXT.JOBS.codex-shard-0");
  });
});

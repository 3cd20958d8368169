/**
 * The compose deployment. Always: `docker compose config` accepts docker-compose.yaml alone, with
 * the demo profile and with docker-compose.cluster.yaml, and refuses it without the passwords,
 * naming .env; nats.conf and nats-cluster.conf pass `nats-server -t`.
 *
 * With a Docker engine (DOCKER_HOST; `.ci/run` starts one with tools/docker-engine.sh): the fleet
 * is built and started with the demo profile, codex's volume is logged in through
 * tools/auth-codex-volume.sh --compose, a job submitted from this machine under the submitter's
 * login is run by the REAL codex CLI in a worker container against the scripted endpoint, a
 * replica killed mid-job leaves its job to the other to finish exactly once, and `down -v` leaves
 * nothing of the project behind.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats } from "../../src/nats/connect.js";
import { resolveNatsServerBin } from "../../src/nats/server.js";
import { PROJECT_ROOT } from "../../src/paths.js";
import { OBJECT_STORES, SUBJECTS, artifactKey } from "../../src/subjects.js";
import { composeCommand, engineReachable } from "../helpers/docker.js";
import { freePort } from "../helpers/net.js";

const compose = composeCommand();
const engine = compose !== undefined && engineReachable();
if (compose === undefined) process.stderr.write("compose checks skipped: no `docker compose` here (tools/docker-engine.sh compose installs it)\n");
else if (!engine) process.stderr.write("compose fleet test skipped: no Docker engine on DOCKER_HOST (eval \"$(tools/docker-engine.sh start)\" starts one)\n");

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: PROJECT_ROOT, env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0, stdout, stderr }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

const PASSWORDS = {
  MOONMIND_NATS_SUBMITTER_PASSWORD: "submitter-pw",
  MOONMIND_NATS_INTAKE_PASSWORD: "intake-pw",
  MOONMIND_NATS_WORKER_PASSWORD: "worker-pw",
  MOONMIND_NATS_OPS_PASSWORD: "ops-pw",
  MOONMIND_NATS_OPERATOR_PASSWORD: "operator-pw",
  MOONMIND_NATS_VIZ_PASSWORD: "viz-pw",
  MOONMIND_NATS_ROUTE_PASSWORD: "route-pw",
};

/** The environment compose reads, without whatever .env or shell settings this machine has. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MOONMIND_|NATS_|COMPOSE_|CODEX_|CLAUDE_|GEMINI_)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

describe.skipIf(compose === undefined)("docker compose config (no engine needed)", () => {
  const config = (env: Record<string, string>, ...args: string[]) => run(compose![0]!, [...compose!.slice(1), ...args, "config", "-q"], cleanEnv(env));

  it("accepts docker-compose.yaml alone, with the demo profile, and with the cluster file", async () => {
    for (const args of [[], ["--profile", "demo"], ["-f", "docker-compose.yaml", "-f", "docker-compose.cluster.yaml"]]) {
      const r = await config(PASSWORDS, ...args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
    }
  });

  it("refuses to start without the NATS passwords, naming the fix", async () => {
    const r = await config({});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/MOONMIND_NATS_\w+_PASSWORD.*\.env-template/);
  });

  it("names the services and volumes the README and the auth scripts use", async () => {
    const r = await run(compose![0]!, [...compose!.slice(1), "--profile", "demo", "config", "--format", "json"], cleanEnv(PASSWORDS));
    expect(r.code, r.stderr).toBe(0);
    const model = JSON.parse(r.stdout) as { services: Record<string, { volumes?: Array<{ source: string; target: string }> }>; volumes: Record<string, { name: string }> };
    expect(Object.keys(model.services).sort()).toEqual(["claude-worker", "codex-worker", "demo-logins", "gemini-worker", "git", "intake", "model", "nats", "ops", "viz"]);
    // The live view is published on loopback only: its page can cancel jobs.
    expect((model.services.viz as { ports?: Array<{ host_ip?: string }> }).ports?.map((p) => p.host_ip)).toEqual(["127.0.0.1"]);
    expect(model.services["codex-worker"]!.volumes).toContainEqual(expect.objectContaining({ source: "codex_auth_volume", target: "/var/lib/codex-auth" }));
    expect(model.services["claude-worker"]!.volumes).toContainEqual(expect.objectContaining({ source: "claude_auth_volume", target: "/var/lib/claude-auth" }));
    expect(model.services["gemini-worker"]!.volumes).toContainEqual(expect.objectContaining({ source: "gemini_auth_volume", target: "/var/lib/gemini-auth" }));
    expect(model.volumes.codex_auth_volume!.name).toBe("codex_auth_volume");
  });
});

describe("the nats-server configurations", () => {
  it("nats.conf and nats-cluster.conf pass nats-server -t with their variables set", async () => {
    const env = cleanEnv({
      ...PASSWORDS,
      MOONMIND_NATS_SERVER_NAME: "nats-1",
      MOONMIND_NATS_ROUTE_1: "nats-route://route:route-pw@nats:6222",
      MOONMIND_NATS_ROUTE_2: "nats-route://route:route-pw@nats-2:6222",
      MOONMIND_NATS_ROUTE_3: "nats-route://route:route-pw@nats-3:6222",
    });
    for (const conf of ["nats.conf", "nats-cluster.conf"]) {
      const r = await run(resolveNatsServerBin(), ["-c", join(PROJECT_ROOT, conf), "-t"], env);
      expect(r.code, `${conf}: ${r.stderr}`).toBe(0);
    }
    const missing = await run(resolveNatsServerBin(), ["-c", join(PROJECT_ROOT, "nats.conf"), "-t"], cleanEnv({}));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/MOONMIND_NATS_SUBMITTER_PASSWORD/);
  });
});

describe.skipIf(!engine)("the compose fleet in a real Docker engine", () => {
  const project = `mm-e2e-${randomBytes(3).toString("hex")}`;
  let env: NodeJS.ProcessEnv;
  let nc: NatsConnection | undefined;
  const dc = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) =>
    run(compose![0]!, [...compose!.slice(1), ...args], env, opts);

  beforeAll(async () => {
    const images = await run("bash", [join(PROJECT_ROOT, "tools/base-images.sh")], process.env, { timeoutMs: 600_000 });
    expect(images.code, images.stderr).toBe(0);
    const baseImages = Object.fromEntries([...images.stdout.matchAll(/(NODE_IMAGE|NATS_IMAGE)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    env = cleanEnv({
      ...PASSWORDS,
      ...baseImages,
      COMPOSE_PROJECT_NAME: project,
      COMPOSE_PROFILES: "demo",
      MOONMIND_IMAGE: `moonmind-runtime:${project}`,
      CODEX_VOLUME_NAME: `${project}-codex-auth`,
      CLAUDE_VOLUME_NAME: `${project}-claude-auth`,
      GEMINI_VOLUME_NAME: `${project}-gemini-auth`,
      NATS_PORT: String(await freePort()),
      NATS_MONITOR_PORT: String(await freePort()),
      VIZ_PORT: String(await freePort()),
      MOONMIND_GIT_BASE_URL: "git://git",
      MOONMIND_CLAUDE_BASE_URL: "http://model:8090",
      MOONMIND_GEMINI_BASE_URL: "http://model:8090",
      MOONMIND_GEMINI_MODEL: "gemini-2.5-flash",
      MOONMIND_CODEX_WORKERS: "2",
      MOONMIND_CODEX_CONCURRENCY: "1",
      MOONMIND_CODEX_SHARDS: "1",
      MOONMIND_ACK_WAIT_MS: "5000",
      MOONMIND_AUTH_TTL_MS: "5000",
    });
    const built = await dc(["build"], { timeoutMs: 1_200_000 });
    expect(built.code, built.stderr.slice(-3_000)).toBe(0);
  }, 1_800_000);

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    if (env) {
      await dc(["down", "-v", "--remove-orphans", "--timeout", "5"], { timeoutMs: 300_000 });
      await run("docker", ["image", "rm", "-f", `moonmind-runtime:${project}`], env);
    }
  }, 600_000);

  it("logs codex in through tools/auth-codex-volume.sh --compose, then starts the whole fleet healthy", async () => {
    const login = await run("bash", [join(PROJECT_ROOT, "tools/auth-codex-volume.sh"), "--compose", "--api-key"], env, {
      input: "sk-demo-placeholder\n",
      timeoutMs: 300_000,
    });
    expect(login.code, login.stdout + login.stderr).toBe(0);
    const check = await run("bash", [join(PROJECT_ROOT, "tools/auth-codex-volume.sh"), "--compose", "--check"], env, { timeoutMs: 300_000 });
    expect(check.code, check.stdout + check.stderr).toBe(0);

    const up = await dc(["up", "-d", "--wait", "--wait-timeout", "240"], { timeoutMs: 300_000 });
    expect(up.code, up.stderr.slice(-3_000)).toBe(0);
    const ps = await dc(["ps", "--format", "json"]);
    const containers = ps.stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as { Service: string; State: string; Health: string });
    const running = containers.filter((c) => c.State === "running");
    expect(running.filter((c) => c.Service === "codex-worker")).toHaveLength(2);
    for (const c of running.filter((c) => ["intake", "ops", "viz", "codex-worker", "claude-worker", "gemini-worker"].includes(c.Service))) {
      expect(c.Health, `${c.Service} health`).toBe("healthy");
    }
  }, 600_000);

  async function submitter(): Promise<NatsConnection> {
    nc ??= await connectNats({ servers: `nats://submitter:${PASSWORDS.MOONMIND_NATS_SUBMITTER_PASSWORD}@127.0.0.1:${env.NATS_PORT}`, name: "compose-e2e" });
    return nc;
  }

  /** Every event of one job, in order, until it ends. */
  function follow(conn: NatsConnection, jobId: string, timeoutMs: number, onEvent?: (type: string, body: Record<string, unknown>) => void) {
    const seen: Array<{ type: string; body: Record<string, unknown> }> = [];
    const ended = new Promise<typeof seen>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${jobId} did not end within ${timeoutMs} ms: ${seen.map((e) => e.type).join(", ")}`)), timeoutMs);
      conn.subscribe(`status.jobs.${jobId}.*`, {
        callback: (_err, msg) => {
          const type = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
          if (type === "state") return; // the machine's transitions, for the live view
          const body = msg.json<Record<string, unknown>>();
          seen.push({ type, body });
          onEvent?.(type, body);
          if (type === "succeeded" || type === "failed" || type === "cancelled" || type === "rejected") {
            clearTimeout(timer);
            // A moment for anything that would (wrongly) follow the end.
            setTimeout(() => resolve(seen), 3_000);
          }
        },
      });
    });
    return ended;
  }

  it("runs a job submitted from this machine with the REAL codex in a worker container, ending succeeded with its patch", async () => {
    const conn = await submitter();
    const jobId = `compose-${randomBytes(3).toString("hex")}`;
    const events = follow(conn, jobId, 240_000);
    await conn.flush();
    const job = { id: jobId, repository: "git://git/sample.git", runtime: "codex", instructions: "write NOTES.md: written by codex in a container\nsay done" };
    await jetstream(conn).publish(SUBJECTS.submit, JSON.stringify(job), { msgID: `submit-${jobId}` });
    const seen = await events;
    expect(seen.map((e) => e.type).at(-1), JSON.stringify(seen.at(-1)?.body)).toBe("succeeded");
    const patch = await (await new Objm(conn).open(OBJECT_STORES.artifacts)).getBlob(artifactKey(jobId, "changes.patch"));
    expect(new TextDecoder().decode(patch!)).toContain("+written by codex in a container");
    // The live view (the viz service, under its read-only role) saw it end, and relays ops for it.
    const viz = `http://127.0.0.1:${env.VIZ_PORT}/`;
    const run = (await (await fetch(new URL(`api/runs/${jobId}`, viz))).json()) as { record: { state: string } };
    expect(run.record.state).toBe("succeeded");
    const live = (await (await fetch(new URL("api/live", viz))).json()) as { jobs: Array<{ jobId: string; record?: { state: string }; machine?: { states: string[] } }> };
    const seenLive = live.jobs.find((j) => j.jobId === jobId);
    expect(seenLive?.record?.state).toBe("succeeded");
    expect(seenLive?.machine?.states).toEqual(["job.done"]);
  }, 300_000);

  it("finishes a job exactly once on the other replica when its worker container is killed mid-job", async () => {
    const conn = await submitter();
    const jobId = `compose-kill-${randomBytes(3).toString("hex")}`;
    let firstWorker: string | undefined;
    let resolveStarted: (id: string) => void;
    const started = new Promise<string>((r) => (resolveStarted = r));
    const events = follow(conn, jobId, 360_000, (type, body) => {
      if (type === "started" && !firstWorker) {
        firstWorker = String(body.workerId);
        resolveStarted(firstWorker);
      }
    });
    await conn.flush();
    const job = { id: jobId, repository: "git://git/sample.git", runtime: "codex", instructions: "run sleep 15\nwrite KILLED.md: finished once\nsay done" };
    await jetstream(conn).publish(SUBJECTS.submit, JSON.stringify(job), { msgID: `submit-${jobId}` });
    const workerId = await started;

    // The worker id begins with its container's hostname, which is the container id's prefix.
    const ps = await run("docker", ["ps", "--filter", `label=com.docker.compose.project=${project}`, "--filter", "label=com.docker.compose.service=codex-worker", "--format", "{{.ID}}"], env);
    const victim = ps.stdout.split("\n").map((s) => s.trim()).find((id) => id && workerId.startsWith(id.slice(0, 12)));
    expect(victim, `no codex-worker container for ${workerId} among ${ps.stdout}`).toBeDefined();
    const killed = await run("docker", ["kill", victim!], env);
    expect(killed.code, killed.stderr).toBe(0);

    const seen = await events;
    const types = seen.map((e) => e.type);
    expect(types.at(-1), types.join(", ")).toBe("succeeded");
    expect(types.filter((t) => t === "succeeded")).toHaveLength(1);
    const finisher = seen.find((e) => e.type === "succeeded")!.body.workerId;
    expect(finisher).not.toBe(workerId);
    const patch = new TextDecoder().decode((await (await new Objm(conn).open(OBJECT_STORES.artifacts)).getBlob(artifactKey(jobId, "changes.patch")))!);
    expect(patch.match(/\+finished once/g)).toHaveLength(1);
  }, 420_000);

  it("leaves nothing of the project behind after down -v", async () => {
    await nc?.close();
    nc = undefined;
    const down = await dc(["down", "-v", "--remove-orphans", "--timeout", "10"], { timeoutMs: 300_000 });
    expect(down.code, down.stderr).toBe(0);
    const label = `label=com.docker.compose.project=${project}`;
    for (const kind of [["ps", "-a"], ["volume", "ls"], ["network", "ls"]]) {
      const left = await run("docker", [...kind, "--filter", label, "-q"], env);
      expect(left.stdout.trim(), `${kind.join(" ")} after down -v`).toBe("");
    }
    const volumes = await run("docker", ["volume", "ls", "-q"], env);
    expect(volumes.stdout.split("\n").filter((v) => v.startsWith(project))).toEqual([]);
  }, 360_000);
});

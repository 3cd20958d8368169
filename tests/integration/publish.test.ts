/**
 * `task.publish.mode: branch`: the worker (not the agent) commits the agent's change on the run's
 * branch with its own author and pushes it to the repository it came from; a refused push fails
 * the run with the remote's words and keeps the patch; the push token shows up nowhere.
 */
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import { Objm } from "@nats-io/obj";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { OBJECT_STORES, SUBJECTS, STREAMS, artifactKey } from "../../src/subjects.js";
import { PUSH_CREDENTIAL_HELPER } from "../../src/workspace/publish.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

const TOKEN = ["ghp", "publishtoken0123456789abcdefghij"].join("_");
let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;
let origin: string;
/** A stand-in forge API: records each request and answers with the next of `answers`. */
const forgeRequests: Array<{ path: string; authorization?: string; body: Record<string, unknown> }> = [];
const answers: Array<{ status: number; body: unknown }> = [];
let forge: Server;
const gitIn = (dir: string, ...args: string[]) => execFileSync("git", [`--git-dir=${dir}`, ...args], { encoding: "utf8" }).trim();

beforeAll(async () => {
  stack = await startStack({ MOONMIND_AGENT_SANDBOX: "none" });
  origin = join(stack.dir, "origin.git");
  execFileSync("git", ["clone", "-q", "--bare", stack.repo, origin]);
  forge = createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => {
      forgeRequests.push({ path: req.url ?? "", ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), body: JSON.parse(raw || "{}") as Record<string, unknown> });
      const answer = answers.shift() ?? { status: 500, body: { message: "no answer scripted" } };
      res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => forge.listen(0, "127.0.0.1", resolve));
  events = recordJobEvents(stack.nc);
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-pub", {
    MOONMIND_GIT_AUTHOR_NAME: "Fleet Bot",
    MOONMIND_GIT_AUTHOR_EMAIL: "fleet@example.test",
    MOONMIND_GIT_PUSH_TOKEN: TOKEN,
    MOONMIND_FORGE_API_URL: `http://127.0.0.1:${(forge.address() as AddressInfo).port}/api/v3`,
  });
});

afterAll(async () => {
  await stopAll(events, worker, intake, stack);
  forge?.close();
});

const submit = (body: Record<string, unknown>) => stack.js.publish(SUBJECTS.submit, JSON.stringify(body));
const ended = (id: string) => events.waitFor((e) => e.jobId === id && (e.type === "succeeded" || e.type === "failed"), 30_000);

describe("publish: branch", () => {
  it("pushes the agent's change as a commit by the worker's author on the run's branch, and says so on the run", async () => {
    await submit({ id: "pub-1", type: "task", repository: origin, task: { instructions: "write FEATURE.md: built by the agent\nsay feature done", git: { newBranch: "feature/agent-work" }, publish: { mode: "branch" } } });
    expect(await ended("pub-1")).toMatchObject({ type: "succeeded", outcome: "PUBLISHED_BRANCH" });
    const record = (await stack.runs.get("pub-1"))!.record;
    const head = gitIn(origin, "rev-parse", "refs/heads/feature/agent-work");
    expect(record.result).toMatchObject({ outcome: "PUBLISHED_BRANCH", published: { branch: "feature/agent-work", commit: head, remote: origin } });
    expect(gitIn(origin, "show", `${head}:FEATURE.md`)).toBe("built by the agent");
    expect(gitIn(origin, "log", "-1", "--format=%an <%ae>|%cn|%s", head)).toBe("Fleet Bot <fleet@example.test>|Fleet Bot|write FEATURE.md: built by the agent");
    expect(gitIn(origin, "log", "-1", "--format=%b", head)).toContain("MoonMind-Job: pub-1");
    // On top of where the job started, and the patch is kept as well.
    expect(gitIn(origin, "rev-parse", `${head}^`)).toBe(gitIn(origin, "rev-parse", "refs/heads/main"));
    const patch = await (await new Objm(stack.nc).open(OBJECT_STORES.artifacts)).getBlob(artifactKey("pub-1", "changes.patch"));
    expect(new TextDecoder().decode(patch!)).toContain("+built by the agent");
  });

  it("fails the run with the remote's own words when the push is refused, keeping the patch", async () => {
    const refusing = join(stack.dir, "refusing.git");
    execFileSync("git", ["clone", "-q", "--bare", stack.repo, refusing]);
    await writeFile(join(refusing, "hooks", "pre-receive"), "#!/bin/sh\necho 'branch pushes are closed for the release freeze' >&2\nexit 1\n");
    await chmod(join(refusing, "hooks", "pre-receive"), 0o755);
    await submit({ id: "pub-refused", type: "task", repository: refusing, maxAttempts: 1, task: { instructions: "write X.md: x", publish: { mode: "branch" } } });
    const end = await ended("pub-refused");
    expect(end).toMatchObject({ type: "failed", error: { code: "PUBLISH_FAILED", message: expect.stringMatching(/moonmind\/pub-refused.*release freeze/) } });
    const patch = await (await new Objm(stack.nc).open(OBJECT_STORES.artifacts)).getBlob(artifactKey("pub-refused", "changes.patch"));
    expect(new TextDecoder().decode(patch!)).toContain("+x");
  });

  it("publish: pr pushes the branch, then opens a pull request through the forge API with the worker's token", async () => {
    answers.push({ status: 201, body: { number: 7, html_url: "https://forge.example.test/fleet/origin/pull/7" } });
    await submit({ id: "pub-pr", type: "task", repository: origin, task: { instructions: "write PR.md: for review\nsay ready for review", publish: { mode: "pr" } } });
    expect(await ended("pub-pr")).toMatchObject({ type: "succeeded", outcome: "PUBLISHED_PR" });
    const head = gitIn(origin, "rev-parse", "refs/heads/moonmind/pub-pr");
    expect((await stack.runs.get("pub-pr"))!.record.result).toMatchObject({
      outcome: "PUBLISHED_PR",
      published: { branch: "moonmind/pub-pr", commit: head, pullRequest: "https://forge.example.test/fleet/origin/pull/7" },
    });
    const slug = origin.split("/").slice(-2).join("/").replace(/\.git$/, "").toLowerCase();
    expect(forgeRequests.at(-1)).toEqual({
      path: `/api/v3/repos/${slug}/pulls`,
      authorization: `Bearer ${TOKEN}`,
      body: { title: "write PR.md: for review", head: "moonmind/pub-pr", base: "main", body: expect.stringContaining("MoonMind-Job: pub-pr") },
    });
  });

  it("fails a pr run with the forge's own message when it refuses, the pushed branch left in place", async () => {
    answers.push({ status: 422, body: { message: "Validation Failed", errors: [{ resource: "PullRequest", code: "custom", message: "A pull request already exists for fleet:moonmind/pub-pr-dup." }] } });
    await submit({ id: "pub-pr-dup", type: "task", repository: origin, maxAttempts: 1, task: { instructions: "write DUP.md: dup", publish: { mode: "pr" } } });
    expect(await ended("pub-pr-dup")).toMatchObject({
      type: "failed",
      error: { code: "PUBLISH_FAILED", message: expect.stringMatching(/HTTP 422.*Validation Failed: A pull request already exists/) },
    });
    expect(gitIn(origin, "rev-parse", "--verify", "refs/heads/moonmind/pub-pr-dup")).toMatch(/^[0-9a-f]{40}$/);
  });

  it("hands the token to git only through its credential helper, from the environment", () => {
    const filled = execFileSync("git", ["-c", "credential.helper=", "-c", `credential.helper=${PUSH_CREDENTIAL_HELPER}`, "credential", "fill"], {
      input: "protocol=https\nhost=forge.example.test\n\n",
      env: { PATH: process.env.PATH, HOME: stack.dir, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0", MOONMIND_PUSH_TOKEN: TOKEN },
      encoding: "utf8",
    });
    expect(filled).toContain(`username=x-access-token\npassword=${TOKEN}`);
  });

  it("leaves the push token in no event, log line or record", async () => {
    const jsm = stack.jsm;
    for (const stream of [STREAMS.status, STREAMS.logs]) {
      const info = await jsm.streams.info(stream);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        expect(m ? m.string() : "").not.toContain(TOKEN);
      }
    }
    for (const id of ["pub-1", "pub-refused"]) expect(JSON.stringify((await stack.runs.get(id))!.record)).not.toContain(TOKEN);
  });
});

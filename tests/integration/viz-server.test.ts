/**
 * The live view's server against a real nats-server: its model is rebuilt from KV and the STATUS
 * history when it (re)starts, follows a worker's and a job's machines live, and its /api relays
 * the ops endpoints — their answers and error codes as HTTP statuses — and refuses cross-site or
 * non-JSON actions.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats } from "../../src/nats/connect.js";
import { Ops } from "../../actors/ops/ops.js";
import type { Intake } from "../../actors/intake/intake.js";
import type { Worker } from "../../actors/worker/worker.js";
import { VizServer } from "../../src/viz/server.js";
import type { LiveSnapshot } from "../../src/viz/live.js";
import { SUBJECTS } from "../../src/subjects.js";
import { recordJobEvents, type EventLog } from "../helpers/events.js";
import { quietLog, startIntake, startStack, startWorker, stopAll, type TestStack } from "../helpers/stack.js";

let stack: TestStack;
let intake: Intake;
let worker: Worker;
let events: EventLog;
const servers: VizServer[] = [];

async function startViz(): Promise<VizServer> {
  const nc = await connectNats({ servers: stack.server.url, name: "viz" });
  const viz = new VizServer(nc, stack.config({ MOONMIND_VIZ_PORT: "0" }), quietLog);
  await viz.start();
  servers.push(viz);
  return viz;
}

const get = async (viz: VizServer, path: string) => {
  const res = await fetch(new URL(path, viz.url));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const post = async (viz: VizServer, path: string, body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) => {
  const res = await fetch(new URL(path, viz.url), { method: "POST", headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  stack = await startStack({ MOONMIND_AGENT_SANDBOX: "none" });
  events = recordJobEvents(stack.nc, "*", { states: true });
  intake = await startIntake(stack);
  worker = await startWorker(stack, "w-viz");
});

afterAll(async () => {
  for (const viz of servers) await viz.stop();
  await stopAll(events, worker, intake, stack);
});

describe("the live view's server", () => {
  it("says plainly that no ops service answers, as a 503 with the remedy", async () => {
    const viz = await startViz();
    const shards = await get(viz, "api/shards");
    expect(shards.status).toBe(503);
    expect(shards.body).toMatchObject({ code: 503, error: expect.stringMatching(/no ops service.*moonmind ops/) });
  });

  it("rebuilds a finished job's machine and the worker's from KV and STATUS when it starts after them", async () => {
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "viz-done", repository: stack.repo, instructions: "write A.md: a" }));
    await events.waitFor((e) => e.jobId === "viz-done" && e.type === "succeeded", 20_000);
    // Its last transition (into `done`) follows the succeeded event: wait for that frame on STATUS.
    await events.waitFor((e) => e.jobId === "viz-done" && e.type === "state" && e.states.includes("job.done"), 10_000);

    const viz = await startViz(); // a fresh server, as after a restart: it saw none of it live
    const live = (await get(viz, "api/live")).body as unknown as LiveSnapshot;
    const job = live.jobs.find((j) => j.jobId === "viz-done");
    expect(job?.record?.state).toBe("succeeded");
    expect(job?.machine).toMatchObject({ states: ["job.done"], workerId: "w-viz", attempt: 1 });
    const w = live.workers.find((x) => x.workerId === "w-viz");
    expect(w?.record?.state).toBe("serving");
    expect(w?.machine?.states).toEqual(["worker.serving"]);
    expect(Object.values(w?.auth ?? {}).map((a) => a.states)).toEqual([["auth.ready"]]);
  });

  it("streams a running job's machine as it moves, on /api/events", async () => {
    const viz = await startViz();
    const controller = new AbortController();
    const res = await fetch(new URL("api/events", viz.url), { signal: controller.signal });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const seen: string[] = [];
    const decoder = new TextDecoder();
    let buffer = "";
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const type = /^event: (\w+)/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (type === "job" && data) {
            const job = JSON.parse(data) as { jobId: string; machine?: { states: string[] } };
            if (job.jobId === "viz-live" && job.machine) seen.push(job.machine.states.join("+"));
          }
          if (seen.includes("job.done")) return;
        }
      }
    })();
    await stack.js.publish(SUBJECTS.submit, JSON.stringify({ id: "viz-live", repository: stack.repo, instructions: "write B.md: b" }));
    await Promise.race([reading, new Promise((_, reject) => setTimeout(() => reject(new Error(`saw only ${seen.join(", ")}`)), 20_000))]);
    controller.abort();
    expect(seen[0]).toBe("job.preflight"); // from its claim on
    expect(seen).toContain("job.running");
    expect(seen.at(-1)).toBe("job.done");
  });

  it("relays the ops endpoints with their answers and codes, and refuses actions that are not its page's", async () => {
    const ops = new Ops(await connectNats({ servers: stack.server.url, name: "ops" }), stack.config(), quietLog);
    await ops.start();
    try {
      const viz = await startViz();
      const run = await get(viz, "api/runs/viz-done");
      expect(run.status).toBe(200);
      expect(run.body).toMatchObject({ record: { jobId: "viz-done", state: "succeeded" } });
      expect((await get(viz, "api/runs?state=succeeded&limit=10")).body).toMatchObject({ total: expect.any(Number) });
      expect(await get(viz, "api/runs/no-such")).toMatchObject({ status: 404, body: { code: 404, error: expect.stringMatching(/no run no-such/) } });
      expect(await get(viz, "api/runs?limit=lots")).toMatchObject({ status: 400, body: { error: expect.stringMatching(/'limit' must be an integer/) } });
      expect(await get(viz, "api/runs?colour=red")).toMatchObject({ status: 400, body: { error: expect.stringMatching(/colour/) } });
      expect(await post(viz, "api/runs/viz-done/cancel", {})).toMatchObject({ status: 409, body: { error: expect.stringMatching(/succeeded already/) } });
      expect(await post(viz, "api/runs/viz-done/cancel", {}, { "content-type": "text/plain" })).toMatchObject({ status: 415 });
      expect(await post(viz, "api/runs/viz-done/cancel", {}, { "content-type": "application/json", origin: "https://elsewhere.example" })).toMatchObject({ status: 403 });
      expect(await get(viz, "api/runs/viz-done/cancel")).toMatchObject({ status: 405 });
      expect(await get(viz, "api/nothing")).toMatchObject({ status: 404 });
      const patch = await fetch(new URL("api/runs/viz-done/patch", viz.url));
      expect(patch.status).toBe(200);
      expect(await patch.text()).toContain("+a");
      const logs = await get(viz, "api/runs/viz-done/logs?lines=5");
      expect(logs.status).toBe(200);
      expect((logs.body.lines as string[]).length).toBeGreaterThan(0);
    } finally {
      await ops.stop();
    }
  });
});

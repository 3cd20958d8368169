/**
 * `moonmind demo` (= `npm run demo`): the whole stack offline. A local scripted endpoint stands in
 * for the vendors' model APIs (it is no model: it follows directives in the prompt), the REAL
 * codex, claude and gemini CLIs run one job each on a sample git repository, and each run's
 * changes.patch is printed. Everything stops at the end.
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { loadConfig } from "../../config.js";
import { startModelServer } from "../../demo/model-server/index.js";
import { sampleRepository } from "../../demo/sample-repo.js";
import { prepareDemoVolumes } from "../../demo/volumes.js";
import { connectNats } from "../../nats/connect.js";
import { RUNTIMES, type Runtime } from "../../schemas/runtime.js";
import { OBJECT_STORES, SUBJECTS, artifactKey, jobEventFilter } from "../../subjects.js";
import type { CliContext } from "../context.js";
import { followStatus } from "../follow.js";
import { startLocalStack } from "../local-stack.js";
import { isTerminal, jobLine } from "../render.js";

export async function demoCommand(ctx: CliContext, opts: { timeout?: string }): Promise<number> {
  const dir = resolve(ctx.config.env.MOONMIND_DATA_DIR, "demo");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  const model = await startModelServer();
  ctx.out(`scripted stand-in for the vendors' model APIs at ${model.url} (not a model: it follows the directives in each prompt)`);
  const volumes = await prepareDemoVolumes(join(dir, "volumes"), model.url);
  const repo = await sampleRepository(join(dir, "sample-repo"));
  const env: NodeJS.ProcessEnv = { ...process.env, ...volumes, MOONMIND_DATA_DIR: join(dir, "var"), MOONMIND_ALLOW_LOCAL_REPOS: "true" };
  delete env.NATS_URL; // the demo always runs its own nats-server
  delete env.MOONMIND_CODEX_BIN; // and the real pinned CLIs
  const config = loadConfig(env);
  const stack = await startLocalStack(config, {
    baseEnv: env,
    workers: RUNTIMES.map((runtime) => ({ name: `worker-${runtime}`, env: { MOONMIND_WORKER_RUNTIMES: runtime, MOONMIND_WORKER_ID: `demo-${runtime}` } })),
    quiet: true,
  });
  ctx.out(`stack up: NATS_URL=${stack.url}; one worker per runtime; sample repository ${repo}\n`);

  const nc = await connectNats({ servers: stack.url, name: "moonmind-demo" });
  const results = new Map<Runtime, string>();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Number(opts.timeout ?? 300) * 1_000);
  try {
    const js = jetstream(nc);
    const ids = RUNTIMES.map((runtime) => ({ runtime, id: `demo-${runtime}-${Date.now().toString(36)}` }));
    for (const { runtime, id } of ids) {
      const instructions = `write NOTES.md: notes written by the ${runtime} CLI\nwrite docs/${runtime}.md: ${runtime} was here\nsay added NOTES.md and docs/${runtime}.md`;
      await js.publish(SUBJECTS.submit, JSON.stringify({ id, repository: repo, runtime, instructions }));
    }
    for await (const item of followStatus(nc, { filter: jobEventFilter(), signal: controller.signal })) {
      if (item.kind !== "job") continue;
      const job = ids.find((j) => j.id === item.event.jobId);
      if (!job) continue;
      ctx.out(jobLine(item.event));
      if (isTerminal(item.event)) results.set(job.runtime, item.event.type);
      if (results.size === ids.length) break;
    }
    const store = await new Objm(nc).open(OBJECT_STORES.artifacts);
    for (const { runtime, id } of ids) {
      const patch = await store.getBlob(artifactKey(id, "changes.patch"));
      ctx.out(`\n===== ${runtime}: ${results.get(runtime) ?? "did not finish"} — ${artifactKey(id, "changes.patch")} =====`);
      ctx.out(patch ? new TextDecoder().decode(patch) : "(no patch)");
    }
  } finally {
    clearTimeout(timer);
    await nc.close();
    await stack.stop();
    await model.stop();
  }
  const ok = RUNTIMES.every((r) => results.get(r) === "succeeded");
  ctx.out(ok ? "demo: all three runtimes succeeded" : `demo: not every runtime succeeded (${[...results].map(([r, s]) => `${r} ${s}`).join(", ")})`);
  return ok ? 0 : 1;
}

/** `moonmind route <repository>`: the shard subject a job for it would go to. */
import { UsageError } from "../../errors.js";
import { route } from "../../routing.js";
import { RuntimeSchema } from "../../schemas/runtime.js";
import type { CliContext } from "../context.js";

export function routeCommand(ctx: CliContext, repository: string, opts: { runtime?: string; affinityKey?: string; json?: boolean }): number {
  const runtime = RuntimeSchema.safeParse(opts.runtime ?? ctx.config.env.MOONMIND_DEFAULT_TASK_RUNTIME);
  if (!runtime.success) throw new UsageError(`--runtime must be one of codex, claude, gemini (got '${opts.runtime}')`);
  const shards = ctx.config.shardCounts[runtime.data];
  const r = route(runtime.data, repository, shards, opts.affinityKey);
  if (opts.json) ctx.out(JSON.stringify({ ...r, shards }));
  else ctx.out(`${r.subject}  (consumer ${r.consumer}, key '${r.key}', shard ${r.shard} of ${shards})`);
  return 0;
}

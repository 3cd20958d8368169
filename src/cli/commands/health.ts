/**
 * `moonmind health [actor]`: whether the actors of this data dir are connected and serving, from
 * the health files they keep (src/health.ts). Exit 0 when every one found is, 1 otherwise: what a
 * container's HEALTHCHECK runs. No NATS connection of its own.
 */
import { checkHealth } from "../../health.js";
import { UsageError } from "../../errors.js";
import type { CliContext } from "../context.js";

const ACTORS = ["intake", "worker", "ops", "viz"];

export async function healthCommand(ctx: CliContext, actor: string | undefined, opts: { json?: boolean }): Promise<number> {
  if (actor !== undefined && !ACTORS.includes(actor)) throw new UsageError(`actor must be one of ${ACTORS.join(", ")} (got '${actor}')`);
  const verdict = await checkHealth(ctx.config.env.MOONMIND_DATA_DIR, actor);
  if (opts.json) ctx.out(JSON.stringify(verdict));
  else for (const line of verdict.lines) (verdict.ok ? ctx.out : ctx.err)(line);
  return verdict.ok ? 0 : 1;
}

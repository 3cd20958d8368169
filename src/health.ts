/**
 * An actor's health file: rewritten every few seconds while the actor serves and its NATS
 * connection answers a ping, removed the moment either stops. A container's HEALTHCHECK
 * (`moonmind health`) then means "connected and serving", not merely "the process is alive".
 *
 *   <data dir>/health/<actor>.<instance>.json   {"actor","instance","pid","at"}
 *
 * One file per actor process, so actors sharing a data dir (`moonmind dev`) each have theirs.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "./logger.js";
import { processAlive } from "./runtimes/procfs.js";

export const HEALTH_INTERVAL_MS = 5_000;
/** A file older than this is stale: three missed rewrites. */
export const HEALTH_MAX_AGE_MS = 3 * HEALTH_INTERVAL_MS;
/** How long the server may take to answer the ping before the actor counts as disconnected. */
const PING_TIMEOUT_MS = 2_000;

interface HealthRecord {
  actor: string;
  instance: string;
  pid: number;
  at: string;
}

export const healthDir = (dataDir: string) => join(dataDir, "health");
const healthFile = (dataDir: string, actor: string, instance: string) => join(healthDir(dataDir), `${actor}.${instance}.json`);

export interface HealthWriter {
  stop(): Promise<void>;
}

export function startHealth(o: { nc: NatsConnection; dataDir: string; actor: string; instance: string; log: Logger; intervalMs?: number }): HealthWriter {
  const file = healthFile(o.dataDir, o.actor, o.instance);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let healthy: boolean | undefined;
  const tick = async () => {
    const ok = await ping(o.nc);
    if (stopped) return;
    try {
      if (ok) {
        await mkdir(healthDir(o.dataDir), { recursive: true });
        const record: HealthRecord = { actor: o.actor, instance: o.instance, pid: process.pid, at: new Date().toISOString() };
        // Whole or not at all: a check never reads half a file.
        await writeFile(`${file}.tmp`, `${JSON.stringify(record)}\n`);
        await rename(`${file}.tmp`, file);
      } else await rm(file, { force: true });
    } catch (err) {
      o.log.warn({ err, file }, "could not write the health file");
    }
    if (ok !== healthy) {
      if (healthy !== undefined) o.log.info({ healthy: ok }, ok ? "healthy again: NATS answers" : "unhealthy: NATS does not answer");
      healthy = ok;
    }
    if (!stopped) timer = setTimeout(() => void tick(), o.intervalMs ?? HEALTH_INTERVAL_MS).unref();
  };
  void tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await rm(file, { force: true });
    },
  };
}

async function ping(nc: NatsConnection): Promise<boolean> {
  if (nc.isClosed()) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS)));
  try {
    (timer as NodeJS.Timeout | undefined)?.unref();
    return await Promise.race([nc.flush().then(() => true as const), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export interface HealthVerdict {
  ok: boolean;
  /** One line per actor found, or why none is healthy. */
  lines: string[];
}

/** Whether the actor (or, without one, every actor with a file here) is serving, as its health file says. */
export async function checkHealth(dataDir: string, actor?: string, now = Date.now(), maxAgeMs = HEALTH_MAX_AGE_MS): Promise<HealthVerdict> {
  const names = (await readdir(healthDir(dataDir)).catch(() => [])).filter((n) => n.endsWith(".json") && (!actor || n.startsWith(`${actor}.`)));
  if (names.length === 0) {
    const why = `no health file in ${healthDir(dataDir)}: not started, stopping, or NATS does not answer it`;
    return { ok: false, lines: [`no ${actor ?? "actor"} is serving here (${why})`] };
  }
  const lines: string[] = [];
  let ok = true;
  for (const name of names) {
    const who = name.replace(/\.json$/, "").replace(".", " ");
    const text = await readFile(join(healthDir(dataDir), name), "utf8").catch(() => undefined);
    const record = text === undefined ? undefined : parseRecord(text);
    if (!record) {
      ok = false;
      lines.push(`${who}: not serving (no health file: not started, stopping, or NATS does not answer)`);
      continue;
    }
    const age = now - Date.parse(record.at);
    if (!processAlive(record.pid)) {
      ok = false;
      lines.push(`${who}: not serving (process ${record.pid} is gone)`);
    } else if (!(age <= maxAgeMs)) {
      ok = false;
      lines.push(`${who}: not serving (last healthy ${Math.round(age / 1_000)} s ago: NATS does not answer, or the actor is stuck)`);
    } else lines.push(`${who}: serving (pid ${record.pid}, checked ${Math.max(0, Math.round(age / 1_000))} s ago)`);
  }
  return { ok, lines };
}

/** Removes the files of actor processes that are gone (a SIGKILL leaves its file behind). */
export async function sweepHealth(dataDir: string): Promise<void> {
  for (const name of await readdir(healthDir(dataDir)).catch(() => [])) {
    if (!name.endsWith(".json")) continue;
    const file = join(healthDir(dataDir), name);
    const record = parseRecord((await readFile(file, "utf8").catch(() => "")) || "null");
    if (!record || !processAlive(record.pid)) await rm(file, { force: true });
  }
}

function parseRecord(text: string): HealthRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<HealthRecord>;
    return typeof r.pid === "number" && typeof r.at === "string" && typeof r.instance === "string" ? (r as HealthRecord) : undefined;
  } catch {
    return undefined;
  }
}

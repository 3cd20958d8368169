/**
 * Where the runtime's processes and the CLI find NATS: NATS_URL, else the URL a running
 * `moonmind dev` wrote under its data dir, else the NATS default port on this machine.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.js";

export const DEV_URL_FILE = "nats.url";

export function devUrlFile(config: Config): string {
  return join(config.env.MOONMIND_DATA_DIR, DEV_URL_FILE);
}

export function resolveNatsUrl(config: Config): { url: string; source: string } {
  if (config.env.NATS_URL) return { url: config.env.NATS_URL, source: "NATS_URL" };
  const file = devUrlFile(config);
  if (existsSync(file)) {
    const url = readFileSync(file, "utf8").trim();
    if (url) return { url, source: file };
  }
  return { url: "nats://127.0.0.1:4222", source: "default" };
}

/**
 * Server URLs as they may be shown or logged: any password replaced by `***`, and a user name
 * without one too (NATS reads `nats://<token>@host` as a token).
 */
export function displayUrl(servers: string): string {
  return servers
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((server) => {
      try {
        const url = new URL(server.includes("://") ? server : `nats://${server}`);
        if (url.password) url.password = "***";
        else if (url.username) url.username = "***";
        else return server;
        return server.includes("://") ? url.toString().replace(/\/$/, "") : url.toString().replace(/^nats:\/\//, "").replace(/\/$/, "");
      } catch {
        return server.includes("@") ? `***@${server.slice(server.lastIndexOf("@") + 1)}` : server; // not a URL: all of its user part
      }
    })
    .join(",");
}

/**
 * Where the runtime's processes and the CLI find NATS: NATS_URL, else the URL a running
 * `moonmind dev` wrote under its data dir, else the NATS default port on this machine.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.js";
import { ConfigError } from "../errors.js";

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

export interface ServerLogin {
  /** The servers with their user parts removed, as the client dials them. */
  servers: string[];
  user?: string;
  pass?: string;
  /** `nats://<token>@host`: a user name alone is a token. */
  token?: string;
}

/**
 * The client takes logins as options, not from URLs (it would dial `nats://u:p@host` and log in
 * as nobody): the user part of NATS_URL is taken off every server and passed on its own. One
 * login for the whole list; servers without a user part share it.
 */
export function splitServerLogin(servers: string): ServerLogin {
  const login: ServerLogin = { servers: [] };
  let seen: string | undefined;
  for (const server of servers.split(",").map((s) => s.trim()).filter(Boolean)) {
    const scheme = server.includes("://");
    let url: URL;
    try {
      url = new URL(scheme ? server : `nats://${server}`);
    } catch {
      login.servers.push(server);
      continue;
    }
    if (!url.username && !url.password) {
      login.servers.push(server);
      continue;
    }
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    const key = `${user}\0${pass}`;
    if (seen !== undefined && seen !== key) {
      throw new ConfigError(`NATS_URL names two different logins (${displayUrl(servers)})`, {
        remedy: "give every server in NATS_URL the same user and password, or name them on the first only",
      });
    }
    seen = key;
    if (url.password) Object.assign(login, { user, pass });
    else login.token = user;
    url.username = "";
    url.password = "";
    const bare = url.toString().replace(/\/$/, "");
    login.servers.push(scheme ? bare : bare.replace(/^nats:\/\//, ""));
  }
  return login;
}

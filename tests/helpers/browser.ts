/**
 * A headless Chromium for the e2e tests, driven by playwright-core (which ships no browser: it
 * drives the system's, see tools/install-chromium.sh). Each page is kept on the machine: every
 * request to a host other than loopback is recorded in `outside` and aborted, so a test can
 * assert the UI loads nothing from the internet and no test ever reaches it.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { PROJECT_ROOT } from "../../src/paths.js";
import { isExecutable } from "../../src/runtimes/binary.js";

/** Flags found to work in the CI container (root, no GPU, no display). */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox", // Chromium's own sandbox refuses to start as root
  "--disable-gpu",
  "--disable-background-networking", // no update checks, safe browsing or field trials phoning home
  // Backstop for connections that never pass through routing (preconnect, DNS prefetch): no
  // name but loopback resolves, so those cannot leave the machine either.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1",
];

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
const LOCAL_SCHEMES = new Set(["data:", "blob:", "about:"]);

/** The Chromium to launch: $MOONMIND_CHROMIUM_BIN, /usr/bin/chromium, or `chromium` on PATH. */
export function chromiumPath(): string | undefined {
  const fromEnv = process.env.MOONMIND_CHROMIUM_BIN;
  if (fromEnv) return fromEnv;
  if (existsSync("/usr/bin/chromium")) return "/usr/bin/chromium";
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, "chromium"))) return join(dir, "chromium");
  }
  return undefined;
}

/** Whether a URL leaves the machine; unparseable ones count as leaving. */
function isOutside(url: string): boolean {
  try {
    const u = new URL(url);
    return !LOCAL_SCHEMES.has(u.protocol) && !LOOPBACK_HOSTS.has(u.hostname);
  } catch {
    return true;
  }
}

export interface OpenBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** URLs the page tried to fetch from non-loopback hosts (all of them were aborted). */
  outside: string[];
  /** console.error messages and uncaught exceptions of the page. */
  errors: string[];
  close(): Promise<void>;
}

/** Launches Chromium with one context and page; throws when there is no Chromium (see chromiumPath). */
export async function openBrowser(): Promise<OpenBrowser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error("no chromium: run tools/install-chromium.sh or set MOONMIND_CHROMIUM_BIN");
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  const outside: string[] = [];
  const errors: string[] = [];
  try {
    const context = await browser.newContext();
    // On the context rather than the page so popups and workers are covered too.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (!isOutside(url)) return route.continue();
      outside.push(url);
      // blockedbyclient: the console then says net::ERR_BLOCKED_BY_CLIENT, which is filtered below.
      return route.abort("blockedbyclient");
    });
    // WebSockets bypass context.route; routed only when outside, so loopback ones stay direct.
    await context.routeWebSocket(
      (url) => isOutside(url.href),
      (ws) => {
        outside.push(ws.url());
        return ws.close({ code: 1008, reason: "blocked by tests/helpers/browser.ts" });
      },
    );
    const page = await context.newPage();
    page.on("console", (msg) => {
      // The "Failed to load resource" lines of our own aborts are already in `outside`.
      if (msg.type() === "error" && !msg.text().includes("ERR_BLOCKED_BY_CLIENT")) errors.push(msg.text());
    });
    page.on("pageerror", (err) => errors.push(String(err.stack ?? err)));
    return { browser, context, page, outside, errors, close: () => browser.close() };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** Writes a full-page PNG to test-artifacts/<name>.png under the project root; returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  const path = join(PROJECT_ROOT, "test-artifacts", `${name}.png`);
  await mkdir(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Login volumes for the offline demo and the end-to-end tests: each agent CLI logged in with a
 * placeholder key and pointed at the local scripted model endpoint (src/demo/model-server).
 * Nothing here is a real credential; nothing leaves the machine.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { resolveBinary } from "../runtimes/binary.js";

export const DEMO_KEY = "sk-demo-placeholder";
export const DEMO_GEMINI_MODEL = "gemini-2.5-flash";

/** The codex provider table that sends every model request to the scripted endpoint. */
export function codexDemoConfig(modelUrl: string): string {
  return [
    'model_provider = "demo"',
    'approval_policy = "never"',
    "[analytics]",
    "enabled = false",
    "[features]",
    "plugins = false",
    "[model_providers.demo]",
    'name = "scripted demo endpoint"',
    `base_url = "${modelUrl}/v1"`,
    'wire_api = "responses"',
    "requires_openai_auth = true",
    "request_max_retries = 0",
    "stream_max_retries = 0",
    "",
  ].join("\n");
}

/**
 * Writes one volume per runtime under `dir` and returns the environment a worker needs to use
 * them (volume paths and the endpoint overrides).
 */
export async function prepareDemoVolumes(dir: string, modelUrl: string): Promise<Record<string, string>> {
  const paths = { codex: join(dir, "codex"), claude: join(dir, "claude"), gemini: join(dir, "gemini") };
  await writeDemoLogins(paths, modelUrl);
  return {
    CODEX_VOLUME_PATH: paths.codex,
    CLAUDE_VOLUME_PATH: paths.claude,
    GEMINI_HOME: paths.gemini,
    MOONMIND_CLAUDE_BASE_URL: modelUrl,
    MOONMIND_GEMINI_BASE_URL: modelUrl,
    MOONMIND_GEMINI_MODEL: DEMO_GEMINI_MODEL,
  };
}

/**
 * The demo's logins on the three volumes at `paths`. `codexLogin: false` writes only codex's
 * endpoint (config.toml) and leaves its login to `tools/auth-codex-volume.sh`, as an operator
 * would log a real one in (the compose demo profile does this).
 */
export async function writeDemoLogins(
  paths: { codex: string; claude: string; gemini: string },
  modelUrl: string,
  opts: { codexLogin?: boolean } = {},
): Promise<void> {
  const { codex, claude, gemini } = paths;
  for (const d of [codex, claude, join(gemini, ".gemini")]) await mkdir(d, { recursive: true, mode: 0o700 });

  await writeFile(join(codex, "config.toml"), codexDemoConfig(modelUrl), { mode: 0o600 });
  if (opts.codexLogin !== false) {
    // The real CLI's own login command writes auth.json, as an operator's would.
    await execa(resolveBinary("codex", undefined), ["login", "--with-api-key"], {
      env: { PATH: process.env.PATH ?? "", CODEX_HOME: codex, HOME: codex },
      input: `${DEMO_KEY}\n`,
      timeout: 60_000,
    });
  }
  await writeFile(join(claude, "api-key"), `${DEMO_KEY}\n`, { mode: 0o600 });
  await writeFile(join(gemini, "api-key"), `${DEMO_KEY}\n`, { mode: 0o600 });
  await writeFile(
    join(gemini, ".gemini", "settings.json"),
    JSON.stringify({ security: { auth: { selectedType: "gemini-api-key" } } }, null, 2),
    { mode: 0o600 },
  );
}

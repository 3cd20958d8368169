/**
 * Runs once before the suite: fails fast, with the fix, when no usable nats-server exists,
 * instead of letting every integration file time out on its own.
 */
import { execFileSync } from "node:child_process";
import { resolveNatsServerBin } from "../src/nats/server.js";

export default function setup(): void {
  const bin = resolveNatsServerBin();
  let version: string;
  try {
    version = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      `nats-server not found (tried '${bin}'). Run tools/install-nats-server.sh or set NATS_SERVER_BIN.`,
    );
  }
  const m = /v(\d+)\.(\d+)/.exec(version);
  if (!m || Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 10)) {
    throw new Error(`${bin} is ${version}; the runtime needs nats-server >= 2.10. Run tools/install-nats-server.sh.`);
  }
  process.stderr.write(`tests use ${version} (${bin})\n`);
}

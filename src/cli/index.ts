/**
 * The `moonmind` command: one commander program, one file per verb, one top-level handler
 * that turns errors into exit codes (2 usage, 78 configuration, 1 anything else).
 * Data goes to stdout, logs and errors to stderr.
 */
import { Command, CommanderError } from "commander";
import { EXIT_CODES } from "../errors.js";
import { VERSION } from "../version.js";
import { runActorCommand } from "./commands/actor.js";
import { authCommand } from "./commands/auth.js";
import { demoCommand } from "./commands/demo.js";
import { devCommand } from "./commands/dev.js";
import { routeCommand } from "./commands/route.js";
import { submitCommand } from "./commands/submit.js";
import { watchCommand } from "./commands/watch.js";
import { cliContext } from "./context.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("moonmind")
    .description("Run AI coding-agent CLIs as queued jobs on NATS JetStream")
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();

  program
    .command("submit")
    .description("submit a job (flags, or JSON from --file PATH or --file - for stdin)")
    .option("-r, --repository <repo>", "owner/name, a git URL, or a local path where allowed")
    .option("-i, --instructions <text>", "what the agent should do")
    .option("--runtime <runtime>", "codex | claude | gemini (default MOONMIND_DEFAULT_TASK_RUNTIME)")
    .option("--ref <ref>", "branch or tag to start from")
    .option("--model <model>", "model for the agent CLI")
    .option("--id <id>", "job id (the dedupe key); generated when absent")
    .option("--max-attempts <n>", "attempts before the job is dead-lettered (default 3)")
    .option("--affinity-key <key>", "route by this key instead of the repository")
    .option("-f, --file <path>", "read the job as JSON from a file, or - for stdin")
    .option("-w, --wait", "follow the job's events until it ends; exit 1 unless it succeeded")
    .option("--timeout <seconds>", "with --wait: stop waiting after this long")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await submitCommand(cliContext(), opts, readStdin)));

  program
    .command("watch [jobId]")
    .description("status events: stored history, then live (one job's end with the job)")
    .option("--since <duration>", "history from this long ago: 30s, 10m, 2h, 1d or all (default: all for a job, 10m otherwise)")
    .option("--workers", "include worker events")
    .option("--follow", "for one job: keep following after it ends")
    .option("--json", "one JSON event per line")
    .action(async (jobId: string | undefined, opts) => setExit(await watchCommand(cliContext(), jobId, opts)));

  program
    .command("route <repository>")
    .description("print the shard subject a job for this repository goes to")
    .option("--runtime <runtime>", "codex | claude | gemini (default MOONMIND_DEFAULT_TASK_RUNTIME)")
    .option("--affinity-key <key>", "route by this key instead")
    .option("--json", "machine-readable output")
    .action((repository: string, opts) => setExit(routeCommand(cliContext(), repository, opts)));

  program
    .command("intake")
    .description("run one intake replica (consumer 'intake' on jobs.submit)")
    .action(async () => {
      cliContext(); // validate the configuration before starting anything
      setExit(await runActorCommand("intake"));
    });

  program
    .command("worker")
    .description("run one worker for MOONMIND_WORKER_RUNTIMES")
    .action(async () => {
      cliContext();
      setExit(await runActorCommand("worker"));
    });

  program
    .command("auth <runtime>")
    .description("log codex|claude|gemini in on a login volume, copy a login in, or check one as a worker does")
    .option("--local <dir>", "the volume directory (default: CODEX_VOLUME_PATH / CLAUDE_VOLUME_PATH / GEMINI_HOME, else ./var/auth/<runtime>)")
    .option("--check", "run the worker's own login check; exit 78 when it fails")
    .option("--sync <dir>", "copy an existing login (a CLI home such as ~/.codex) into the volume")
    .option("--api-key", "read an API key from stdin")
    .option("--token", "claude: read the token `claude setup-token` printed from stdin")
    .option("--json", "machine-readable output")
    .action(async (runtime: string, opts) => setExit(await authCommand(cliContext(), runtime, opts, readStdin)));

  program
    .command("dev")
    .description("run the whole stack on this machine (local nats-server unless NATS_URL is set)")
    .option("--stand-in", "use the scripted codex stand-in (tests/fixtures) instead of the real CLI")
    .action(async (opts) => setExit(await devCommand(cliContext(), opts)));

  program
    .command("demo")
    .description("offline demo: the real codex, claude and gemini CLIs each change a sample repository, against a local scripted stand-in for the vendors' APIs")
    .option("--timeout <seconds>", "give up after this long (default 300)")
    .action(async (opts) => setExit(await demoCommand(cliContext(), opts)));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram((code) => {
    process.exitCode = code;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
    if (!(err instanceof CommanderError)) {
      const e = err as { message?: string; remedy?: string };
      process.stderr.write(`moonmind: ${e.message ?? String(err)}\n${e.remedy ? `  fix: ${e.remedy}\n` : ""}`);
    }
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    return err.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
  }
  const code = (err as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === "number" ? code : EXIT_CODES.failure;
}

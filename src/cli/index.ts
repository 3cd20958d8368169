/**
 * The `moonmind` command: one commander program, one file per verb, one top-level handler
 * that turns errors into exit codes (2 usage, 78 configuration, 1 anything else).
 * Data goes to stdout, logs and errors to stderr. Each verb's module is loaded when it runs,
 * so a quick verb (`route`) never pays for the NATS client, the actors or execa.
 */
import { Command, CommanderError } from "commander";
import { EXIT_CODES } from "../errors.js";
import { COMPILED } from "../paths.js";
import { VERSION } from "../version.js";
import { cliContext } from "./context.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("moonmind")
    .description("Run AI coding-agent CLIs as queued jobs on NATS JetStream")
    .version(`${VERSION}${COMPILED ? "" : " (from source)"}`)
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
    .option("--resume <runId>", "a follow-up: continue that succeeded run (its result, and its agent's session where the CLI can)")
    .option("--id <id>", "job id (the dedupe key); generated when absent")
    .option("--max-attempts <n>", "attempts before the job is dead-lettered (default 3)")
    .option("--affinity-key <key>", "route by this key instead of the repository")
    .option("-f, --file <path>", "read the job as JSON from a file, or - for stdin")
    .option("-w, --wait", "follow the job's events until it ends; exit 1 unless it succeeded")
    .option("--timeout <seconds>", "with --wait: stop waiting after this long")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/submit.js")).submitCommand(cliContext(), opts, readStdin)));

  program
    .command("watch [jobId]")
    .description("status events: stored history, then live (one job's end with the job)")
    .option("--since <duration>", "history from this long ago: 30s, 10m, 2h, 1d or all (default: all for a job, 10m otherwise)")
    .option("--workers", "include worker events (heartbeats only with --heartbeats)")
    .option("--heartbeats", "with --workers: include worker heartbeats")
    .option("--states", "include machine transitions (`state` events: the live view's source)")
    .option("--follow", "for one job: keep following after it ends")
    .option("--appear-timeout <seconds>", "for an id with no record and no events yet: how long to wait for it (default 10)")
    .option("--json", "one JSON event per line")
    .action(async (jobId: string | undefined, opts) => setExit(await (await import("./commands/watch.js")).watchCommand(cliContext(), jobId, opts)));

  program
    .command("logs <jobId>")
    .description("a job's agent output from LOGS (kept 24 h); --follow goes on live until the job ends")
    .option("-f, --follow", "after what is stored, follow live output until the job ends")
    .option("--json", "one {jobId, seq, at, lines} batch per line")
    .action(async (jobId: string, opts) => setExit(await (await import("./commands/logs.js")).logsCommand(cliContext(), jobId, opts)));

  program
    .command("artifacts <jobId> [kind]")
    .description("a job's stored artifacts: the list, or one of patch | log | message | session to stdout or --out FILE")
    .option("-o, --out <file>", "save the artifact to FILE instead of printing it")
    .option("--json", "machine-readable output")
    .action(async (jobId: string, kind: string | undefined, opts) => setExit(await (await import("./commands/artifacts.js")).artifactsCommand(cliContext(), jobId, kind, opts)));

  program
    .command("shards")
    .description("every shard: queue depth, the workers bound to it and their logins, why jobs wait (ops.shards)")
    .option("--runtime <runtime>", "only this runtime's shards")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/shards.js")).shardsCommand(cliContext(), opts)));

  program
    .command("usage")
    .description("tokens, turns and cost the agents reported, per login (or runtime, model, repository), over a window (ops.usage)")
    .option("--since <duration>", "runs changed this long ago or later: 30m, 24h, 7d or all (default 24h)")
    .option("--by <grouping>", "login | runtime | model | repository (default login)")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/usage.js")).usageCommand(cliContext(), opts)));

  program
    .command("workers")
    .description("every live worker: runtimes, shards, auth state per login, running jobs (ops.workers)")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/workers.js")).workersCommand(cliContext(), opts)));

  const runs = program.command("runs").description("list, inspect, cancel, retry runs and re-run their preflight (ops.runs.*)");
  runs
    .command("list", { isDefault: true })
    .alias("ls")
    .description("runs, newest first")
    .option("--state <state>", "queued | running | succeeded | failed | cancelled | dead_letter")
    .option("--runtime <runtime>", "codex | claude | gemini")
    .option("--repository <repo>", "only runs of this repository")
    .option("--shard <n>", "only runs on this shard")
    .option("--limit <n>", "at most this many (default 50)")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/runs.js")).runsListCommand(cliContext(), opts)));
  runs
    .command("get <runId>")
    .description("the run record and its event history")
    .option("--json", "machine-readable output")
    .action(async (runId: string, opts) => setExit(await (await import("./commands/runs.js")).runsGetCommand(cliContext(), runId, opts)));
  runs
    .command("cancel <runId>")
    .description("cancel a queued run at once, or ask its worker to stop a running one")
    .option("--reason <text>", "recorded with the cancellation")
    .option("--json", "machine-readable output")
    .action(async (runId: string, opts) => setExit(await (await import("./commands/runs.js")).runsCancelCommand(cliContext(), runId, opts)));
  runs
    .command("retry <runId>")
    .description("queue a failed, cancelled or dead-lettered run again under the same id")
    .option("--json", "machine-readable output")
    .action(async (runId: string, opts) => setExit(await (await import("./commands/runs.js")).runsRetryCommand(cliContext(), runId, opts)));
  runs
    .command("preflight <runId>")
    .description("re-run the login check of the run's runtime on a worker serving its shard; exit 1 when it fails")
    .option("--force-refresh", "run it even when a fresh stored result exists")
    .option("--json", "machine-readable output")
    .action(async (runId: string, opts) => setExit(await (await import("./commands/runs.js")).runsPreflightCommand(cliContext(), runId, opts)));

  const dead = program.command("dead").description("dead letters (DEAD stream) and replaying them (ops.dead.*)");
  dead
    .command("ls", { isDefault: true })
    .alias("list")
    .description("dead letters with their reasons, newest first")
    .option("--limit <n>", "at most this many (default 50)")
    .option("--json", "machine-readable output")
    .action(async (opts) => setExit(await (await import("./commands/dead.js")).deadListCommand(cliContext(), opts)));
  dead
    .command("replay [jobId]")
    .description("re-submit a dead letter (its job id's newest, or --seq N) after a fix")
    .option("--seq <n>", "the letter's DEAD stream sequence instead of a job id")
    .option("--json", "machine-readable output")
    .action(async (jobId: string | undefined, opts) => setExit(await (await import("./commands/dead.js")).deadReplayCommand(cliContext(), jobId, opts)));

  program
    .command("health [actor]")
    .description("exit 0 if the actors of this data dir (or the one named: intake, worker, ops, viz) are connected and serving")
    .option("--json", "machine-readable output")
    .action(async (actor: string | undefined, opts) => setExit(await (await import("./commands/health.js")).healthCommand(cliContext(), actor, opts)));

  program
    .command("route <repository>")
    .description("print the shard subject a job for this repository goes to")
    .option("--runtime <runtime>", "codex | claude | gemini (default MOONMIND_DEFAULT_TASK_RUNTIME)")
    .option("--affinity-key <key>", "route by this key instead")
    .option("--json", "machine-readable output")
    .action(async (repository: string, opts) => setExit((await import("./commands/route.js")).routeCommand(cliContext(), repository, opts)));

  program
    .command("intake")
    .description("run one intake replica (consumer 'intake' on jobs.submit)")
    .action(async () => {
      cliContext(); // validate the configuration before starting anything
      setExit(await (await import("./commands/actor.js")).runActorCommand("intake"));
    });

  program
    .command("worker")
    .description("run one worker for MOONMIND_WORKER_RUNTIMES")
    .action(async () => {
      cliContext();
      setExit(await (await import("./commands/actor.js")).runActorCommand("worker"));
    });

  program
    .command("ops")
    .description("run one replica of the moonmind-ops service (ops.* requests; any number share them)")
    .action(async () => {
      cliContext();
      setExit(await (await import("./commands/actor.js")).runActorCommand("ops"));
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
    .action(async (runtime: string, opts) => setExit(await (await import("./commands/auth.js")).authCommand(cliContext(), runtime, opts, readStdin)));

  program
    .command("dev")
    .description("run the whole stack on this machine (local nats-server unless NATS_URL is set)")
    .option("--stand-in", "use the scripted codex stand-in (tests/fixtures) instead of the real CLI")
    .action(async (opts) => setExit(await (await import("./commands/dev.js")).devCommand(cliContext(), opts)));

  program
    .command("demo")
    .description("offline demo: the real codex, claude and gemini CLIs each change a sample repository, against a local scripted stand-in for the vendors' APIs")
    .option("--timeout <seconds>", "give up after this long (default 300)")
    .action(async (opts) => setExit(await (await import("./commands/demo.js")).demoCommand(cliContext(), opts)));

  program
    .command("viz")
    .description("the live view: an HTTP server (MOONMIND_VIZ_HOST:MOONMIND_VIZ_PORT, 127.0.0.1:4280) with every actor's machine state, panels and actions; --export writes a machine's diagram instead")
    .option("--export <format>", "mermaid | svg | json")
    .option("--machine <name>", "worker | auth | job (default: all)")
    .option("--out <path>", "a file (one machine) or a directory (all)")
    .action(async (opts) => setExit(await (await import("./commands/viz.js")).vizCommand(cliContext(), opts)));

  program
    .command("demo-service")
    .description("one piece of the offline demo alone (the compose demo profile): endpoint | logins | git")
    .argument("<part>", "endpoint (the scripted model API), logins (the demo's logins on the volumes) or git (a sample repository)")
    .option("--port <port>", "endpoint: 8090; git: 9418")
    .option("--host <host>", "address to listen on (default 0.0.0.0)")
    .option("--model-url <url>", "logins: where the endpoint is, e.g. http://model:8090")
    .option("--dir <dir>", "git: where the repositories live (default <data dir>/git)")
    .action(async (part: string, opts) => setExit(await (await import("./commands/demo-service.js")).demoServiceCommand(cliContext(), part, opts)));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  endQuietlyOnClosedPipe();
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

/**
 * `moonmind watch | head`: once the reader is gone, stop without a stack trace. The exit code
 * stays what it was (0 unless something failed before).
 */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    return err.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
  }
  const code = (err as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === "number" ? code : EXIT_CODES.failure;
}

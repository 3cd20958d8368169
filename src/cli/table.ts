/**
 * The terminal side of human output: tables from cli-table3, colour from picocolors (only on a
 * TTY, never with NO_COLOR), and a spinner on stderr while a command waits (TTY only).
 */
import Table from "cli-table3";
import picocolors from "picocolors";
export type Colors = ReturnType<typeof picocolors.createColors>;

export interface Terminal {
  /** Colours for stdout: identity functions unless stdout is a TTY and NO_COLOR is unset. */
  colors: Colors;
  /** Whether a spinner may be drawn on stderr. */
  interactive: boolean;
}

export function detectTerminal(env: NodeJS.ProcessEnv = process.env): Terminal {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== "";
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "" && env.FORCE_COLOR !== "0";
  const colour = !noColor && (force || (process.stdout.isTTY === true && env.TERM !== "dumb"));
  return {
    colors: picocolors.createColors(colour),
    interactive: process.stderr.isTTY === true && env.TERM !== "dumb" && env.CI === undefined,
  };
}

/** No borders, two spaces between columns; cli-table3 colours nothing itself (picocolors decides). */
const PLAIN = {
  chars: {
    top: "", "top-mid": "", "top-left": "", "top-right": "",
    bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
    left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  ",
  },
  style: { head: [] as string[], border: [] as string[], "padding-left": 0, "padding-right": 0, compact: true },
};

/** A borderless table: a header row and one row per item, columns sized by the library. */
export function renderTable(head: string[], rows: Array<Array<string | number | undefined>>, colors: Colors): string {
  const table = new Table({ head: head.map((h) => colors.bold(h)), ...PLAIN });
  for (const row of rows) table.push(row.map((c) => (c === undefined ? "" : String(c))));
  return table.toString().split("\n").map((l) => l.trimEnd()).join("\n");
}

/** Key/value lines (for one record), aligned by the table library. */
export function renderPairs(pairs: Array<[string, string | number | undefined]>, colors: Colors): string {
  const rows = pairs.filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => [colors.dim(k), String(v)]);
  const table = new Table({ ...PLAIN });
  for (const r of rows) table.push(r);
  return table.toString().split("\n").map((l) => l.trimEnd()).join("\n");
}

/** Colour for a run state. */
export function paintState(state: string, colors: Colors): string {
  switch (state) {
    case "succeeded":
    case "passed":
    case "ready":
    case "running":
      return colors.green(state);
    case "failed":
    case "dead_letter":
    case "unauthenticated":
    case "unavailable":
      return colors.red(state);
    case "cancelled":
    case "paused":
    case "draining":
    case "queued":
      return colors.yellow(state);
    default:
      return state;
  }
}

export interface Progress {
  update(text: string): void;
  /** Erases the spinner's line so that output can be written; it comes back on the next frame. */
  clear(): void;
  stop(): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * A one-line spinner on stderr while something waits; nothing at all off a TTY. Small enough to
 * keep here: the spinner libraries key on stdout being a TTY and take over SIGINT.
 */
export function startProgress(terminal: Terminal, text: string): Progress {
  if (!terminal.interactive) return { update: () => undefined, clear: () => undefined, stop: () => undefined };
  const err = process.stderr;
  let frame = 0;
  let shown = false;
  let current = text;
  const width = () => Math.max(10, (err.columns || 80) - 1);
  const draw = () => {
    const line = `${FRAMES[frame++ % FRAMES.length]} ${current}`;
    err.write(`\r\x1b[2K${line.length > width() ? `${line.slice(0, width() - 1)}…` : line}`);
    shown = true;
  };
  const clear = () => {
    if (shown) err.write("\r\x1b[2K");
    shown = false;
  };
  // Shown only for a wait one notices: a quick answer never flickers a spinner.
  let timer: NodeJS.Timeout | undefined;
  const delay = setTimeout(() => {
    draw();
    timer = setInterval(draw, 80);
    timer.unref();
  }, 300);
  delay.unref();
  let stopped = false;
  return {
    update: (t) => {
      current = t;
    },
    clear,
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(delay);
      clearInterval(timer);
      clear();
    },
  };
}

/** `1h 2m`, `3m 4s`, `5.2 s`: a duration for people. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

/** `2026-01-02T03:04:05.678Z` → `01-02 03:04:05`, compact for tables. */
export function shortTime(iso: string | undefined): string {
  if (!iso) return "";
  return `${iso.slice(5, 10)} ${iso.slice(11, 19)}`;
}

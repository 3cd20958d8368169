/**
 * The progress line on stderr: on a terminal one line rewritten in place, elsewhere (CI, a pipe)
 * one plain line per step and at most one count line every few seconds.
 */

export interface Progress {
  /** A new step begins. */
  step(name: string): void;
  /** How far the current step is. */
  count(done: number, total: number): void;
  /** Ends the line (the table follows on stdout). */
  done(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true && process.env.TERM !== "dumb";
  const started = performance.now();
  let name = "";
  let stepAt = started;
  let lastPlain = 0;
  const elapsed = () => `${((performance.now() - started) / 1_000).toFixed(0).padStart(4)}s`;
  const write = (text: string) => {
    if (tty) stream.write(`\r\x1b[2K${text.slice(0, Math.max(20, (stream.columns ?? 100) - 1))}`);
    else stream.write(`${text}\n`);
  };
  return {
    step(next) {
      if (!tty && name) stream.write(`bench ${elapsed()}  ${name}: done in ${((performance.now() - stepAt) / 1_000).toFixed(1)}s\n`);
      name = next;
      stepAt = performance.now();
      write(`bench ${elapsed()}  ${name}`);
    },
    count(done, total) {
      if (!tty && performance.now() - lastPlain < 5_000 && done < total) return;
      lastPlain = performance.now();
      const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
      write(`bench ${elapsed()}  ${name}  ${done}/${total} (${pct}%)`);
    },
    done() {
      if (tty) stream.write(`\r\x1b[2Kbench ${elapsed()}  finished\n`);
      else stream.write(`bench ${elapsed()}  ${name}: done in ${((performance.now() - stepAt) / 1_000).toFixed(1)}s\nbench ${elapsed()}  finished\n`);
    },
  };
}

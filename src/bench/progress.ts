/**
 * The live progress display: on a TTY one line redrawn in place (completed, in flight, queued, rate); otherwise a
 * quiet line every few seconds, so logs of CI runs stay short. Always written to stderr, so `--json` output on
 * stdout stays one clean object.
 */

export interface ProgressState {
  label: string;
  elapsedMs: number;
  submitted: number;
  /** Total to submit, when known (`--dispatches`). */
  total: number | null;
  completed: number;
  terminal: number;
  inFlight: number;
  queued: number;
  /** Completed per second over the last window. */
  rate: number;
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

export type ProgressMode = 'auto' | 'tty' | 'lines' | 'off';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatProgress(s: ProgressState): string {
  const secs = (s.elapsedMs / 1000).toFixed(1);
  const of = s.total !== null ? `/${fmt(s.total)}` : '';
  return (
    `[${s.label} ${secs}s] completed ${fmt(s.completed)}${of}  terminal ${fmt(s.terminal)}  ` +
    `in flight ${fmt(s.inFlight)}  queued ${fmt(s.queued)}  submitted ${fmt(s.submitted)}  rate ${fmt(s.rate)}/s`
  );
}

export class ProgressDisplay {
  private readonly mode: 'tty' | 'lines' | 'off';
  private lastLineAt = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    mode: ProgressMode = 'auto',
    private readonly lineIntervalMs = 5000,
  ) {
    this.mode = mode === 'auto' ? (stream.isTTY ? 'tty' : 'lines') : mode;
  }

  update(state: ProgressState): void {
    if (this.mode === 'off') return;
    const text = formatProgress(state);
    if (this.mode === 'tty') {
      const width = this.stream.columns && this.stream.columns > 10 ? this.stream.columns - 1 : text.length;
      this.stream.write(`\r\x1b[2K${text.slice(0, width)}`);
      this.drawn = true;
      return;
    }
    if (state.elapsedMs - this.lastLineAt >= this.lineIntervalMs) {
      this.lastLineAt = state.elapsedMs;
      this.stream.write(`${text}\n`);
    }
  }

  /** Print a message without garbling the progress line. */
  note(message: string): void {
    if (this.mode === 'tty' && this.drawn) {
      this.stream.write(`\r\x1b[2K${message}\n`);
      this.drawn = false;
      return;
    }
    this.stream.write(`${message}\n`);
  }

  /** Leave the final state on its own line. */
  finish(state: ProgressState | null): void {
    if (this.mode === 'off') return;
    if (this.mode === 'tty') {
      if (state) this.stream.write(`\r\x1b[2K${formatProgress(state)}\n`);
      else if (this.drawn) this.stream.write('\n');
      this.drawn = false;
      return;
    }
    if (state) this.stream.write(`${formatProgress(state)}\n`);
  }
}

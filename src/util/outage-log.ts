/**
 * Logging for an operation that is retried in a loop (a signal pull, a sweep, a reconnect): a dependency that
 * is down makes it fail many times a second, and one line per failure buries everything else in the log.
 * `OutageLog` writes one warning when the operation starts failing, one info line when it works again (with
 * how long it failed and how often), and while the outage lasts at most one reminder per `reminderMs`.
 */
import type { Logger } from './logger.js';

/** A failing operation is reported again when it is still failing after this long (default). */
export const OUTAGE_REMINDER_MS = 60_000;

export interface OutageLogOptions {
  /** Extra fields on every line (e.g. which connection). */
  fields?: Record<string, unknown>;
  reminderMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

export class OutageLog {
  readonly #logger: Logger;
  readonly #what: string;
  readonly #fields: Record<string, unknown>;
  readonly #reminderMs: number;
  readonly #now: () => number;
  /** When the current outage began (null: the operation works). */
  #since: number | null = null;
  #failures = 0;
  #lastReportAt = 0;
  #lastError = '';

  /** `what` names the operation, e.g. `dispatch signal pull`. */
  constructor(logger: Logger, what: string, options: OutageLogOptions = {}) {
    this.#logger = logger;
    this.#what = what;
    this.#fields = options.fields ?? {};
    this.#reminderMs = options.reminderMs ?? OUTAGE_REMINDER_MS;
    this.#now = options.now ?? Date.now;
  }

  /** True between the first failure and the next success. */
  get failing(): boolean {
    return this.#since !== null;
  }

  /** The operation failed: a warning for the first failure of an outage, then at most one per reminder. */
  failed(err: unknown): void {
    const now = this.#now();
    this.#failures++;
    this.#lastError = describe(err);
    if (this.#since === null) {
      this.#since = now;
      this.#lastReportAt = now;
      this.#logger.warn?.(`${this.#what} failing (retrying; logged again when it recovers)`, {
        ...this.#fields,
        error: this.#lastError,
      });
      return;
    }
    if (now - this.#lastReportAt >= this.#reminderMs) {
      this.#lastReportAt = now;
      this.#logger.warn?.(`${this.#what} still failing`, {
        ...this.#fields,
        error: this.#lastError,
        failures: this.#failures,
        failingForMs: now - this.#since,
      });
    }
  }

  /** The operation worked: one info line if it had been failing, nothing otherwise. */
  succeeded(): void {
    if (this.#since === null) return;
    const now = this.#now();
    this.#logger.info?.(`${this.#what} recovered`, {
      ...this.#fields,
      failures: this.#failures,
      failedForMs: now - this.#since,
      lastError: this.#lastError,
    });
    this.#since = null;
    this.#failures = 0;
    this.#lastError = '';
  }
}

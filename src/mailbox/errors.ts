/**
 * Errors an executor and a runtime see from the Mailbox service.
 *
 * - `PermanentError`: thrown by an executor to say "retrying cannot help" (the dispatch is dead-lettered at once).
 *   Any other thrown error counts as transient and is retried with backoff until `max_attempts`.
 * - `RunAbortedError`: the `AbortSignal.reason` of a run the Mailbox aborted; `reason` says why.
 */

/** Why the Mailbox aborted a run. */
export type AbortReason = 'cancel' | 'interrupt' | 'lease-lost' | 'shutdown';

export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

export class RunAbortedError extends Error {
  readonly reason: AbortReason;

  constructor(reason: AbortReason) {
    super(`run aborted: ${reason}`);
    // `AbortError` like the platform's own abort errors, so `err.name === 'AbortError'` checks keep working.
    this.name = 'AbortError';
    this.reason = reason;
  }
}

/** The Mailbox's reason for aborting `signal`, or null when it is not aborted (or was aborted by someone else). */
export function abortReasonOf(signal: AbortSignal): AbortReason | null {
  if (!signal.aborted) return null;
  const reason: unknown = signal.reason;
  return reason instanceof RunAbortedError ? reason.reason : null;
}

export function isPermanentError(err: unknown): err is PermanentError {
  return err instanceof PermanentError;
}

/** A loggable, storable text for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/** A Mailbox call made after `stop()` began. */
export class MailboxStoppedError extends Error {
  constructor() {
    super('mailbox is stopped');
    this.name = 'MailboxStoppedError';
  }
}

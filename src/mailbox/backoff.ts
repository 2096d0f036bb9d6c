/** Backoff formulas of the Awaken server's mailbox. */

/**
 * Delay before retrying a transient run failure: `min(base × 2^min(max(attempt_count − 1, 0), 6), max)`, where
 * `attemptCountAtClaim` is the dispatch's `attempt_count` when it was claimed (before the nack increments it).
 */
export function retryDelayMs(attemptCountAtClaim: number, baseMs: number, maxMs: number): number {
  const exponent = Math.min(Math.max(attemptCountAtClaim - 1, 0), 6);
  return Math.min(baseMs * 2 ** exponent, maxMs);
}

/**
 * Delay before a blocked dispatch signal is redelivered: `min(base × 2^min(attempts − 1, 16), max)`, where
 * `attempts` is the signal's delivery count (1 when the transport cannot tell).
 */
export function signalNackDelayMs(deliveryAttempts: number | null, baseMs: number, maxMs: number): number {
  const attempts = deliveryAttempts ?? 1;
  const exponent = Math.min(Math.max(attempts - 1, 0), 16);
  return Math.min(baseMs * 2 ** exponent, maxMs);
}

/**
 * Optional store addition behind the age gauges: the head of two ordered indexes, each one bounded read
 * (a `ZRANGE … 0 0 WITHSCORES` on Redis, the first element of a sorted list in memory). Both built-in stores
 * implement it; a store without it simply reports no age gauges.
 */
import type { MailboxStore } from '../contract/store.js';

export interface IndexHeads {
  /** The smallest `lease_until` of any Claimed dispatch; null when nothing is Claimed. */
  oldestLeaseUntil: number | null;
  /**
   * The earliest time a Queued dispatch is owed a (re)signal: `max(available_at, last signal + republish
   * delay)`; null when nothing is Queued, or the store has no signals.
   */
  earliestSignalDue: number | null;
}

export interface IndexHeadsProbe {
  probeIndexHeads(): Promise<IndexHeads>;
}

export function hasIndexHeadsProbe(store: MailboxStore): store is MailboxStore & IndexHeadsProbe {
  return typeof (store as Partial<IndexHeadsProbe>).probeIndexHeads === 'function';
}

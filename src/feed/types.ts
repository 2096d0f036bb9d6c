/**
 * The lifecycle feed's vocabulary: one event per dispatch transition a node observed, published in batches so
 * any process of the namespace can follow every node's work (BullMQ's QueueEvents, for the mailbox).
 */
import type { RunDispatchStatus } from '../contract/types.js';

export const LIFECYCLE_EVENT_TYPES = [
  'enqueued',
  'claimed',
  'started',
  'completed',
  'retried',
  'deadLettered',
  'superseded',
  'cancelled',
  'handedBack',
  'requeued',
] as const;

/**
 * - `enqueued`: a dispatch was enqueued through a store the feed is attached to;
 * - `claimed`, `started`, `completed`, `retried`, `deadLettered`, `superseded`, `cancelled`, `handedBack`:
 *   the Mailbox events of the same names;
 * - `requeued`: a dead letter was put back in the queue (`requeueDeadLetter`).
 */
export type LifecycleEventType = (typeof LIFECYCLE_EVENT_TYPES)[number];

/** Events after which the dispatch is terminal (unless a dead letter is requeued later). */
export const FINISHING_EVENT_TYPES: ReadonlySet<LifecycleEventType> = new Set([
  'completed',
  'deadLettered',
  'superseded',
  'cancelled',
]);

export interface LifecycleEvent {
  type: LifecycleEventType;
  dispatch_id: string;
  thread_id: string;
  run_id: string;
  /** The dispatch's status right after the transition. */
  status: RunDispatchStatus;
  attempt_count: number;
  /** When the transition happened (the record's `updated_at`, Unix ms, clock of the node that made it). */
  at: number;
  /** The consumer id of the Mailbox that published the event; null from a publisher without a Mailbox. */
  node: string | null;
  /** `retried` / `deadLettered`: the error; `handedBack`: the reason. At most `MAX_EVENT_TEXT` characters. */
  error?: string;
  /** `retried`: when the next attempt may start (Unix ms). */
  retry_at?: number;
}

/** Longest `error` an event carries; longer texts are cut (the record keeps the whole `last_error`). */
export const MAX_EVENT_TEXT = 1_000;

/** Where a new consumer starts reading. */
export type FeedStart = 'now' | 'oldest';

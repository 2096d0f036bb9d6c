/**
 * Cancel requests: optional store additions, like the dead-letter ones. A store opts in by implementing
 * `CancelRequestMailboxStore` (including the `CANCEL_REQUEST_STORE` brand); callers check with
 * `isCancelRequestStore`. Both built-in stores implement it.
 *
 * They carry `cancel(id)` of a run on another node where no live command reaches it (the Redis store
 * without NATS): the canceller records the request in the store, and the node that holds the run finds it
 * when it next reads the run's thread (the Mailbox's epoch watch, every `epochPollIntervalMs`, and every
 * lease renewal) and aborts the run with `cancel`, as a live `Cancel` would.
 *
 * `requestRunCancel(dispatchId, claimToken)`: when the dispatch is Claimed with `claimToken`, records on
 * its thread that this claim's run is asked to stop (replacing any earlier request on the thread) and
 * returns true; otherwise (unknown id, another status, another claim) returns false and changes nothing.
 * The record itself does not change: the run's own settlement ends the claim, as after any abort.
 *
 * `readRunControl(threadId)`: the thread's current dispatch epoch (as `currentDispatchEpoch`) and the claim
 * token of the latest cancel request on the thread, `null` when there is none. The token may belong to a
 * claim that has ended since; a reader compares it with its own claim's token. A purge that leaves the
 * thread without records forgets both.
 */
import type { MailboxStore } from './store.js';

export const CANCEL_REQUEST_STORE: unique symbol = Symbol.for('awaken-mailbox.cancel-request-store');

/** What a node holding a run of the thread checks: an interrupt moved the epoch, or a cancel names its claim. */
export interface RunControl {
  epoch: number;
  /** The claim token of the latest cancel request on the thread (possibly of an ended claim), or null. */
  cancelToken: string | null;
}

export interface CancelRequestMailboxStore extends MailboxStore {
  readonly [CANCEL_REQUEST_STORE]: true;
  requestRunCancel(dispatchId: string, claimToken: string): Promise<boolean>;
  readRunControl(threadId: string): Promise<RunControl>;
}

export function isCancelRequestStore(store: MailboxStore): store is CancelRequestMailboxStore {
  const s = store as Partial<CancelRequestMailboxStore>;
  return (
    s[CANCEL_REQUEST_STORE] === true &&
    typeof s.requestRunCancel === 'function' &&
    typeof s.readRunControl === 'function'
  );
}

/** `readRunControl` for any store: stores without cancel requests answer their epoch and no request. */
export function runControlReader(store: MailboxStore): (threadId: string) => Promise<RunControl> {
  if (isCancelRequestStore(store)) return (threadId) => store.readRunControl(threadId);
  return async (threadId) => ({ epoch: await store.currentDispatchEpoch(threadId), cancelToken: null });
}

/**
 * Fused store operations (design.md §5): optional additions to the `MailboxStore` contract that run two
 * contract methods as ONE atomic step (one round trip on Redis), each with exactly the records, errors and
 * side effects of the two calls made back to back. A store opts in by implementing `FusedMailboxStore`
 * (including the `FUSED_STORE` brand); callers check with `isFusedStore` and fall back to the sequential
 * pair otherwise.
 *
 * Every argument of both steps is validated first (`args.*`, `Validation` naming the field), so a bad
 * argument of the second step fails before the first one writes anything.
 */
import type { StorageError } from './errors.js';
import type { MailboxStore } from './store.js';
import type { RunDispatch, RunDispatchResult } from './types.js';

/** The claim that `completeAndClaimNext` makes after the completion: `claimAndStart`'s arguments. */
export interface NextClaim {
  threadId: string;
  consumerId: string;
  leaseMs: number;
  dispatchInstanceId: string;
}

/**
 * What `completeAndClaimNext` did after the completion committed: `next` is the started record of the
 * next claim (null when nothing was claimed); `claimError` is set when that claim failed (the completion
 * still committed).
 */
export interface CompletedWithNext {
  next: RunDispatch | null;
  claimError?: StorageError;
}

/**
 * Brand of a store with fused operations. A brand (not just method presence) so wrappers that answer
 * every property with a function, such as test stubs, are not mistaken for fused stores.
 */
export const FUSED_STORE: unique symbol = Symbol.for('awaken-mailbox.fused-store');

export interface FusedMailboxStore extends MailboxStore {
  readonly [FUSED_STORE]: true;

  /**
   * `claim(threadId, consumerId, leaseMs, now, 1)` then, on the claimed record,
   * `recordDispatchStart(dispatch_id, claim_token, dispatchInstanceId, now)`, atomically. Returns the
   * record after the start (Claimed, run_status `running`), or null when the claim returned `[]`.
   */
  claimAndStart(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
  ): Promise<RunDispatch | null>;

  /** `claimDispatch(...)` then `recordDispatchStart(...)` on the claimed record, atomically; null when not claimed. */
  claimDispatchAndStart(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
  ): Promise<RunDispatch | null>;

  /**
   * `recordRunResult(dispatchId, claimToken, result, now)` then `ack(dispatchId, claimToken, now)`,
   * atomically. When the first step fails its error is thrown with its side effects (a stale epoch
   * supersedes the dispatch and throws `VersionConflict`; a run_id mismatch throws `Validation` and
   * changes nothing) and the ack does not run.
   */
  completeAndAck(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void>;

  /**
   * `completeAndAck(dispatchId, claimToken, result, now)` then `claimAndStart(next.threadId,
   * next.consumerId, next.leaseMs, now, next.dispatchInstanceId)`, atomically: a thread's run finishes and
   * its next dispatch starts in one step. A failing completion throws its error (with its side effects) and
   * claims nothing; a failing claim after a committed completion is returned as `claimError`.
   */
  completeAndClaimNext(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
    next: NextClaim,
  ): Promise<CompletedWithNext>;
}

/** True when `store` carries the `FUSED_STORE` brand and the fused methods. */
export function isFusedStore(store: MailboxStore): store is FusedMailboxStore {
  const s = store as Partial<FusedMailboxStore>;
  return (
    s[FUSED_STORE] === true &&
    typeof s.claimAndStart === 'function' &&
    typeof s.claimDispatchAndStart === 'function' &&
    typeof s.completeAndAck === 'function' &&
    typeof s.completeAndClaimNext === 'function'
  );
}

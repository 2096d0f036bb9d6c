/**
 * Fused store operations: optional additions to the `MailboxStore` contract that run two contract methods
 * as ONE atomic step (one round trip on Redis), each with exactly the records, errors and
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
  /** The token of the next claim, minted by the caller (`HandBackMailboxStore`); the store mints one when absent. */
  claimToken?: string;
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

// ---- Hand-back store additions (used by the Mailbox service) ----

/**
 * Brand of a store with the hand-back additions (`HandBackMailboxStore`): claims take a caller-minted
 * token, and a claim can be handed back without counting as a failed attempt.
 */
export const HAND_BACK_STORE: unique symbol = Symbol.for('awaken-mailbox.hand-back-store');

/** Which claim `releaseClaim` looks for: one dispatch, or whatever the token holds on one thread. */
export type ClaimRef = { dispatchId: string } | { threadId: string };

/**
 * Optional store additions of the Mailbox service, on top of the fused operations:
 *
 * - Every claim variant takes an optional `claimToken` minted by the caller (`NextClaim.claimToken` for the
 *   chained claim). A caller that lost a claim's reply (timeout, dropped connection) still knows the token,
 *   so it can release whatever that claim took once the store answers again. Without it the store mints
 *   one, as before.
 * - `releaseClaim` hands a claim back: a Claimed dispatch holding `claimToken` (the dispatch `ref.dispatchId`,
 *   or every Claimed dispatch of thread `ref.threadId`) returns to Queued, available at `now`, with
 *   `attempt_count` and `last_error` unchanged, the claim and the runtime projection cleared, and is
 *   signalled like any dispatch that became claimable. A claim whose epoch is older than its thread's is
 *   superseded instead (as every owner write does). Returns the records after the change; `[]` when the
 *   token holds nothing there (the claim never committed, or was already settled). Never fails for a
 *   claim that is not ours.
 * - `listClaimedByRunId` finds the Claimed dispatches of a run id (at most `limit`), whichever node holds
 *   them: what `cancel(runId)` needs for a run claimed elsewhere. Reads the lease index (one entry per
 *   Claimed dispatch), so its cost grows with the number of runs in progress, not with the queue.
 */
export interface HandBackMailboxStore extends FusedMailboxStore {
  readonly [HAND_BACK_STORE]: true;

  claim(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    limit: number,
    claimToken?: string,
  ): Promise<RunDispatch[]>;

  claimDispatch(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    claimToken?: string,
  ): Promise<RunDispatch | null>;

  claimAndStart(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null>;

  claimDispatchAndStart(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null>;

  releaseClaim(ref: ClaimRef, claimToken: string, now: number): Promise<RunDispatch[]>;

  listClaimedByRunId(runId: string, limit: number): Promise<RunDispatch[]>;
}

/** True when `store` carries the `HAND_BACK_STORE` brand (and the fused operations). */
export function isHandBackStore(store: MailboxStore): store is HandBackMailboxStore {
  const s = store as Partial<HandBackMailboxStore>;
  return (
    s[HAND_BACK_STORE] === true &&
    isFusedStore(store) &&
    typeof s.releaseClaim === 'function' &&
    typeof s.listClaimedByRunId === 'function'
  );
}

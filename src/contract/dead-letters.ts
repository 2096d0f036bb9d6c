/**
 * Dead-letter store additions: optional, like the fused operations. A store opts in by implementing
 * `DeadLetterMailboxStore` (including the `DEAD_LETTER_STORE` brand); callers check with `isDeadLetterStore`.
 * Both built-in stores implement it.
 *
 * `requeueDeadLetter(dispatchId, now, {resetAttempts})` puts a DeadLetter dispatch back in the queue:
 * - Queued, available at `now`, claim fields, `completed_at` and the runtime projection cleared;
 *   `last_error` is kept (it says why the dispatch died), `attempt_count` is kept unless `resetAttempts`
 *   sets it to 0. A dispatch that died of exhausted attempts and is requeued without a reset gets exactly
 *   one more attempt: its next failure dead-letters it again.
 * - Thread epoch: the dispatch is stamped with its thread's CURRENT epoch, as `enqueue` stamps a new one. A
 *   requeue is an explicit operator decision made now, so an interrupt that happened after the dispatch
 *   died does not void it (an interrupt only supersedes work that was queued when it happened).
 * - Dedupe: when the dispatch has a `dedupe_key` that another non-terminal dispatch of the thread holds,
 *   the requeue is refused with `AlreadyExists("dedupe_key=<key>")` and nothing changes; otherwise the
 *   requeued dispatch holds the key again.
 * - It is signalled like any dispatch that became claimable (Redis Streams: by the same script; JetStream:
 *   published right after; memory: at once), and scheduled for the sweeper's republish.
 * - Errors: unknown id → `NotFound(<id>)`; a dispatch that is not DeadLetter (say, requeued already by
 *   someone else) → `Validation` naming its status; nothing changes in either case.
 * Returns the record after the change.
 *
 * `purgeDeadLetters(dispatchIds)` deletes the listed dispatches that are DeadLetter (others, missing or in
 * another status, are skipped) and returns how many it deleted. Like `purgeTerminal`, a thread left without
 * records forgets its epoch state. At most `args.MAX_BATCH` ids per call.
 */
import { z } from 'zod';
import { MAX_BATCH } from './args.js';
import { StorageError } from './errors.js';
import type { MailboxStore } from './store.js';
import { requeuedAt } from './transitions.js';
import type { RunDispatch } from './types.js';

export const DEAD_LETTER_STORE: unique symbol = Symbol.for('awaken-mailbox.dead-letter-store');

export interface RequeueDeadLetterOptions {
  /** Set `attempt_count` back to 0, so the dispatch gets its full `max_attempts` again. Default false. */
  resetAttempts?: boolean;
}

export interface DeadLetterMailboxStore extends MailboxStore {
  readonly [DEAD_LETTER_STORE]: true;
  requeueDeadLetter(
    dispatchId: string,
    now: number,
    options?: RequeueDeadLetterOptions,
  ): Promise<RunDispatch>;
  purgeDeadLetters(dispatchIds: readonly string[]): Promise<number>;
}

export function isDeadLetterStore(store: MailboxStore): store is DeadLetterMailboxStore {
  const s = store as Partial<DeadLetterMailboxStore>;
  return (
    s[DEAD_LETTER_STORE] === true &&
    typeof s.requeueDeadLetter === 'function' &&
    typeof s.purgeDeadLetters === 'function'
  );
}

/** The record `requeueDeadLetter` writes (the store checks status and dedupe first). */
export function deadLetterRequeued(
  d: RunDispatch,
  epoch: number,
  now: number,
  resetAttempts: boolean,
): RunDispatch {
  return {
    ...requeuedAt(d, now),
    dispatch_epoch: epoch,
    attempt_count: resetAttempts ? 0 : d.attempt_count,
  };
}

const requeueOptionsSchema = z.object({ resetAttempts: z.boolean().optional() }).strict().nullish();

/** `requeueDeadLetter`'s options, validated (the public boundary of both stores): the reset flag. */
export function resetAttemptsArg(options: unknown): boolean {
  const parsed = requeueOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw StorageError.validation('options must be an object with at most resetAttempts (a boolean)');
  }
  return parsed.data?.resetAttempts ?? false;
}

/** `purgeDeadLetters`' ids, validated with `id` (each a non-blank id), at most `args.MAX_BATCH`. */
export function dispatchIdsArg(dispatchIds: unknown, id: (name: string, value: unknown) => string): string[] {
  if (!Array.isArray(dispatchIds)) throw StorageError.validation('dispatch_ids must be an array');
  if (dispatchIds.length > MAX_BATCH) {
    throw StorageError.validation(`dispatch_ids must hold at most ${MAX_BATCH} ids`);
  }
  return [...new Set(dispatchIds.map((d, i) => id(`dispatch_ids.${i}`, d)))];
}

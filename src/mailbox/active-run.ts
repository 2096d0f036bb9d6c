/**
 * One claimed dispatch executing on this node: its claim, abort controller, command inbox, live channel and lease
 * renewer, plus the phase `stop()` needs to know whether the claim can still be released safely.
 */
import type { LiveRunCommandStream, RunDispatch } from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import { CommandInbox } from './command-inbox.js';
import { RunAbortedError, errorMessage } from './errors.js';
import type { AbortReason } from './errors.js';
import { forwardLiveCommands } from './live-forwarder.js';
import type { LeaseRenewer } from './lease-renewer.js';

/** `starting` → `executing` (executor running) → `settling` (writing the outcome) → `done`. */
export type RunPhase = 'starting' | 'executing' | 'settling' | 'done';

/** Why a live `Cancel` reached the run: `interrupt` when its thread's epoch moved past the claim. */
export type LiveCancelReason = (run: ActiveRun) => Promise<AbortReason>;

export class ActiveRun {
  readonly dispatch: RunDispatch;
  readonly claimToken: string;
  readonly inbox = new CommandInbox();
  /**
   * Made on first use of `signal` (an executor that never looks at it costs no AbortController); `#aborted`
   * holds the reason either way.
   */
  #controller: AbortController | null = null;
  #aborted: RunAbortedError | null = null;
  /** `onAbort` listeners, made on first use. */
  #abortListeners: ((reason: RunAbortedError) => void)[] | null = null;
  readonly #logger: Logger;
  readonly #liveCancelReason: LiveCancelReason;
  #stream: LiveRunCommandStream | null = null;
  #renewer: LeaseRenewer | null = null;
  phase: RunPhase = 'starting';
  /** The lease could not be proven (lost, or renewals failed past the deadline): write nothing more. */
  leaseLost = false;
  /**
   * The completion's chained claim (`completeAndClaimNext`) ran and found nothing to claim on the thread: the
   * thread needs no further claim after this run unless new work was signalled since (see ThreadWorker).
   */
  chainedClaimFoundNothing = false;
  /** Resolves when the execution (including its store writes) is over. Set by the launcher. */
  finished: Promise<void> = Promise.resolve();

  constructor(dispatch: RunDispatch, logger: Logger, liveCancelReason?: LiveCancelReason) {
    if (dispatch.claim_token === null) throw new Error(`dispatch ${dispatch.dispatch_id} is not claimed`);
    this.dispatch = dispatch;
    this.claimToken = dispatch.claim_token;
    this.#logger = logger;
    this.#liveCancelReason = liveCancelReason ?? (() => Promise.resolve('cancel'));
  }

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted !== null) this.#controller.abort(this.#aborted);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted !== null;
  }

  get abortReason(): AbortReason | null {
    return this.#aborted?.reason ?? null;
  }

  get label(): Record<string, unknown> {
    return {
      dispatchId: this.dispatch.dispatch_id,
      threadId: this.dispatch.thread_id,
      runId: this.dispatch.run_id,
    };
  }

  /**
   * Call `listener` once when the run is aborted, with the reason `signal` carries; at once when it already
   * was. Returns the function that removes it. No AbortController is made for it (see ExecutorContext).
   */
  onAbort(listener: (reason: RunAbortedError) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('onAbort needs a function');
    if (this.#aborted !== null) {
      this.#callAbortListener(listener, this.#aborted);
      return () => {};
    }
    const listeners = (this.#abortListeners ??= []);
    listeners.push(listener);
    return () => {
      const i = listeners.indexOf(listener);
      if (i >= 0) listeners.splice(i, 1);
    };
  }

  /** Abort once; the first reason wins. True when this call aborted the run. */
  abort(reason: AbortReason): boolean {
    if (this.#aborted !== null || this.phase === 'done') return false;
    const aborted = new RunAbortedError(reason);
    this.#aborted = aborted;
    this.#controller?.abort(aborted);
    const listeners = this.#abortListeners;
    this.#abortListeners = null;
    if (listeners !== null) for (const listener of listeners) this.#callAbortListener(listener, aborted);
    return true;
  }

  #callAbortListener(listener: (reason: RunAbortedError) => void, reason: RunAbortedError): void {
    try {
      listener(reason);
    } catch (err) {
      // As an AbortSignal listener's error would: it must not stop the abort or the other listeners.
      this.#logger.error?.('an onAbort listener threw', { ...this.label, error: errorMessage(err) });
    }
  }

  /** The lease is no longer proven: abort (`lease-lost`) and never write for this claim again. */
  loseLease(): void {
    this.leaseLost = true;
    this.abort('lease-lost');
  }

  /**
   * A live `Cancel` arrived: abort with the reason it stands for (cancel, or interrupt). True when the run
   * is (or already was) aborted while its executor ran; false once the executor returned, whose settlement
   * an abort no longer changes (the sender is then told the Cancel did not land).
   */
  async #onLiveCancel(): Promise<boolean> {
    if (this.#aborted !== null) return this.phase !== 'done';
    if (!this.executing) return false;
    let reason: AbortReason = 'cancel';
    try {
      reason = await this.#liveCancelReason(this);
    } catch (err) {
      this.#logger.warn?.('could not tell a live cancel from an interrupt; cancelling', {
        ...this.label,
        error: errorMessage(err),
      });
    }
    // The executor may have returned while the reason was read.
    if (!this.executing) return this.#aborted !== null;
    this.abort(reason);
    return true;
  }

  attachRenewer(renewer: LeaseRenewer): void {
    this.#renewer = renewer;
    renewer.start();
  }

  setWaiting(waiting: boolean): void {
    this.#renewer?.setWaiting(waiting);
  }

  stopRenewing(): void {
    this.#renewer?.stop();
  }

  /** Start forwarding the run's live channel into its inbox; a run already over closes the stream at once. */
  attachLiveStream(stream: LiveRunCommandStream): void {
    if (this.phase === 'done') {
      void this.#closeStream(stream);
      return;
    }
    this.#stream = stream;
    void forwardLiveCommands(
      stream,
      this.inbox,
      () => this.#onLiveCancel(),
      () => this.abort('cancel'),
      this.#logger,
      this.label,
    );
  }

  /** Whether a live channel feeds the run (until its commands end): a live `Cancel` can reach it. */
  get hasLiveChannel(): boolean {
    return this.#stream !== null;
  }

  /** Whether a steering command can still reach the executor (it runs, and reads `ctx.commands`). */
  get acceptsCommands(): boolean {
    return (
      (this.phase === 'starting' || this.phase === 'executing') &&
      this.inbox.isReading &&
      !this.inbox.isClosed
    );
  }

  /** The executor is still running (or about to): its claim must not be released by anyone else. */
  get executing(): boolean {
    return this.phase === 'starting' || this.phase === 'executing';
  }

  /**
   * The executor is done: refuse further commands (local senders see "not delivered", remote ones "no
   * subscriber" at once instead of a request timeout). Idempotent.
   */
  async endCommands(): Promise<void> {
    this.inbox.close();
    const stream = this.#stream;
    this.#stream = null;
    if (stream) await this.#closeStream(stream);
  }

  /** End of the run: no more renewals, commands or live subscription. Idempotent. */
  async close(): Promise<void> {
    this.phase = 'done';
    this.stopRenewing();
    await this.endCommands();
  }

  async #closeStream(stream: LiveRunCommandStream): Promise<void> {
    try {
      await stream.close();
    } catch (err) {
      this.#logger.warn?.('closing the live channel failed', { ...this.label, error: errorMessage(err) });
    }
  }
}

/**
 * Lease renewal for one claimed dispatch (contract.md §13 C): every `intervalMs` (no immediate first tick)
 * `extendLease(id, token, waiting ? suspendedLeaseMs : leaseMs, now)`. `false` means the claim is gone (expired
 * and reclaimed, superseded, or acked elsewhere): the run is aborted. A store error stops renewing but leaves the
 * run alone, as upstream. Calls never overlap; the timer is unref'd.
 *
 * Before each renewal the thread's epoch is read: once an interrupt moved it past the dispatch's epoch, the run
 * is aborted (`onStale`) without renewing. Renewing would supersede the stale claim at once and free the thread
 * for another node while this executor still runs; aborting first lets the run's own settlement release the
 * claim after the executor returned, so two executions of one thread never overlap (the bench checks it).
 */
import type { MailboxStore } from '../contract/store.js';
import type { Logger } from '../util/logger.js';
import { errorMessage } from './errors.js';

export interface LeaseRenewerOptions {
  store: MailboxStore;
  dispatchId: string;
  claimToken: string;
  intervalMs: number;
  leaseMs: number;
  suspendedLeaseMs: number;
  /** The claimed dispatch's thread and epoch, for the stale check before each renewal. */
  threadId: string;
  dispatchEpoch: number;
  onLost(): void;
  /** The thread was interrupted past this claim's epoch. */
  onStale(): void;
  logger: Logger;
}

export class LeaseRenewer {
  readonly #opts: LeaseRenewerOptions;
  #timer: NodeJS.Timeout | null = null;
  #inFlight = false;
  #waiting = false;
  #stopped = false;

  constructor(opts: LeaseRenewerOptions) {
    this.#opts = opts;
  }

  start(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setInterval(() => this.#renew(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  /** Switch between the normal and the suspended (waiting for a human) lease; entering waiting renews at once. */
  setWaiting(waiting: boolean): void {
    if (this.#waiting === waiting) return;
    this.#waiting = waiting;
    if (waiting) this.#renew();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #renew(): void {
    if (this.#stopped || this.#inFlight) return;
    this.#inFlight = true;
    const { store, dispatchId, claimToken, leaseMs, suspendedLeaseMs, logger } = this.#opts;
    const extension = this.#waiting ? suspendedLeaseMs : leaseMs;
    store
      .currentDispatchEpoch(this.#opts.threadId)
      .then(async (epoch) => {
        if (epoch > this.#opts.dispatchEpoch) return 'stale' as const;
        return (await store.extendLease(dispatchId, claimToken, extension, Date.now())) ? 'kept' : 'lost';
      })
      .then(
        (outcome) => {
          if (outcome === 'kept' || this.#stopped) return;
          if (outcome === 'stale') {
            logger.info?.('thread interrupted past this claim; aborting the run', { dispatchId });
            this.stop();
            this.#opts.onStale();
            return;
          }
          logger.warn?.('lease lost; aborting the run', { dispatchId });
          this.stop();
          this.#opts.onLost();
        },
        (err: unknown) => {
          if (this.#stopped) return;
          logger.error?.('lease renewal failed; no longer renewing', {
            dispatchId,
            error: errorMessage(err),
          });
          this.stop();
        },
      )
      .finally(() => {
        this.#inFlight = false;
      });
  }
}

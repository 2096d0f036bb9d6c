/**
 * Lease renewal for one claimed dispatch (contract.md §13 C): every `intervalMs` (no immediate first tick)
 * `extendLease(id, token, waiting ? suspendedLeaseMs : leaseMs, now)`. `false` means the claim is gone (expired
 * and reclaimed, superseded, or acked elsewhere): the run is aborted. A store error stops renewing but leaves the
 * run alone, as upstream. Calls never overlap; the timer is unref'd.
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
  onLost(): void;
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
      .extendLease(dispatchId, claimToken, extension, Date.now())
      .then(
        (kept) => {
          if (kept || this.#stopped) return;
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

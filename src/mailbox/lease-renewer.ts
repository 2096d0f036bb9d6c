/**
 * Lease renewal for one claimed dispatch, with fencing: every `intervalMs` (no immediate
 * first tick) `extendLease(id, token, waiting ? suspendedLeaseMs : leaseMs, now)`.
 *
 * - `false` means the claim is gone (expired and reclaimed, superseded, or acked elsewhere): the run is
 *   aborted (`onLost`).
 * - A store error is retried (sooner than the interval) until a local deadline before the lease this
 *   process last proved ends; past that deadline the run is aborted (`onLost`) and renewal stops. One
 *   transient error never ends renewal while the run goes on, and a run whose lease can no longer be proven
 *   is aborted before another node may reclaim it. The deadline is a timer of its own, so a renewal call
 *   that hangs cannot postpone it.
 * - Before each renewal the thread's epoch is read: once an interrupt moved it past the dispatch's epoch, the
 *   run is aborted (`onStale`) without renewing. Renewing would supersede the stale claim at once and free
 *   the thread for another node while this executor still runs; aborting first lets the run's own settlement
 *   release the claim after the executor returned, so two executions of one thread never overlap.
 * - On a store with cancel requests the same read carries the thread's latest cancel request: when it names
 *   this claim, the run is aborted with `cancel` (`onCancelRequested`, once) and the lease is still renewed
 *   until the run settles. (The Mailbox's epoch watch finds both sooner; this is the bound without it.)
 *
 * Calls never overlap; one unref'd timer per run.
 */
import { runControlReader, type RunControl } from '../contract/cancel-requests.js';
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
  /** When the lease of the claim ends (ms, this process's clock: the claim's `now` + lease). */
  leaseUntil: number;
  /** The lease is gone, or could not be proven before the local deadline. */
  onLost(): void;
  /** The thread was interrupted past this claim's epoch. */
  onStale(): void;
  /** A cancel request names this claim (stores with cancel requests only). */
  onCancelRequested?(): void;
  /** The thread's epoch and latest cancel request; default `runControlReader(store)` (the Mailbox shares one). */
  readControl?: (threadId: string) => Promise<RunControl>;
  logger: Logger;
}

/**
 * How long before the end of a lease of `extensionMs` the run is aborted when renewals keep failing: a
 * third of the lease, but never so much that the deadline comes before the next scheduled renewal.
 */
export function fencingMarginMs(extensionMs: number, intervalMs: number): number {
  return Math.floor(Math.min(extensionMs / 3, Math.max(0, extensionMs - intervalMs) / 2));
}

/** Delay before retrying a failed renewal: a quarter of the interval, within 50 ms .. 1 s. */
export function renewalRetryMs(intervalMs: number): number {
  return Math.min(1_000, Math.max(50, Math.floor(intervalMs / 4)));
}

export class LeaseRenewer {
  readonly #opts: LeaseRenewerOptions;
  #timer: NodeJS.Timeout | null = null;
  #inFlight = false;
  #waiting = false;
  #stopped = false;
  #started = false;
  /** Next renewal due (ms). */
  #renewAt = 0;
  /** Past this instant the lease is no longer proven: abort. */
  #deadline: number;
  #failures = 0;
  readonly #readControl: (threadId: string) => Promise<RunControl>;
  #cancelSeen = false;

  constructor(opts: LeaseRenewerOptions) {
    this.#opts = opts;
    this.#readControl = opts.readControl ?? runControlReader(opts.store);
    this.#deadline = opts.leaseUntil - fencingMarginMs(opts.leaseMs, opts.intervalMs);
  }

  start(): void {
    if (this.#stopped || this.#started) return;
    this.#started = true;
    this.#renewAt = Date.now() + this.#opts.intervalMs;
    this.#schedule();
  }

  /** Switch between the normal and the suspended (waiting for a human) lease; entering waiting renews at once. */
  setWaiting(waiting: boolean): void {
    if (this.#waiting === waiting) return;
    this.#waiting = waiting;
    if (waiting && this.#started && !this.#stopped) {
      this.#renewAt = Date.now();
      this.#tick();
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    const next = this.#inFlight ? this.#deadline : Math.min(this.#renewAt, this.#deadline);
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, next - Date.now()));
    this.#timer.unref();
  }

  #tick(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const now = Date.now();
    if (now >= this.#deadline) {
      this.#opts.logger.error?.('lease could not be renewed before its deadline; aborting the run', {
        dispatchId: this.#opts.dispatchId,
        failedRenewals: this.#failures,
      });
      this.#lose();
      return;
    }
    if (now >= this.#renewAt && !this.#inFlight) this.#renew(now);
    this.#schedule();
  }

  #renew(sentAt: number): void {
    this.#inFlight = true;
    const { store, dispatchId, claimToken, leaseMs, suspendedLeaseMs, intervalMs, logger } = this.#opts;
    const extension = this.#waiting ? suspendedLeaseMs : leaseMs;
    this.#readControl(this.#opts.threadId)
      .then(async ({ epoch, cancelToken }) => {
        // Stopped while the read was in flight (the run settled): nothing to report, nothing to renew.
        if (this.#stopped) return 'stopped' as const;
        if (epoch > this.#opts.dispatchEpoch) return 'stale' as const;
        if (cancelToken === claimToken && !this.#cancelSeen) {
          this.#cancelSeen = true;
          logger.info?.('cancel requested for this claim; aborting the run', { dispatchId });
          this.#opts.onCancelRequested?.();
        }
        return (await store.extendLease(dispatchId, claimToken, extension, sentAt)) ? 'kept' : 'lost';
      })
      .then(
        (outcome) => {
          this.#inFlight = false;
          if (this.#stopped) return;
          if (outcome === 'kept') {
            if (this.#failures > 0)
              logger.info?.('lease renewal recovered', { dispatchId, failures: this.#failures });
            this.#failures = 0;
            this.#deadline = sentAt + extension - fencingMarginMs(extension, intervalMs);
            // setWaiting switched the lease while this call was in flight: renew with the other one now.
            const wanted = this.#waiting ? suspendedLeaseMs : leaseMs;
            this.#renewAt = wanted === extension ? sentAt + intervalMs : Date.now();
            this.#schedule();
            return;
          }
          if (outcome === 'stale') {
            logger.info?.('thread interrupted past this claim; aborting the run', { dispatchId });
            this.stop();
            this.#opts.onStale();
            return;
          }
          logger.warn?.('lease lost; aborting the run', { dispatchId });
          this.#lose();
        },
        (err: unknown) => {
          this.#inFlight = false;
          if (this.#stopped) return;
          this.#failures++;
          const log = this.#failures === 1 ? logger.warn : logger.debug;
          log?.call(logger, 'lease renewal failed; retrying until the lease deadline', {
            dispatchId,
            failures: this.#failures,
            deadlineInMs: this.#deadline - Date.now(),
            error: errorMessage(err),
          });
          this.#renewAt = Date.now() + renewalRetryMs(intervalMs);
          this.#schedule();
        },
      );
  }

  #lose(): void {
    this.stop();
    this.#opts.onLost();
  }
}

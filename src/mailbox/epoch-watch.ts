/**
 * Interrupts from other nodes, for runs that get no live channel (a store without live commands: the Redis
 * store without NATS). An interrupt moves the thread's epoch; with live commands it also sends the thread's
 * run a live `Cancel`. Without them the run would learn of it only at its next lease renewal (up to
 * `leaseRenewalIntervalMs`, 10 s by default), holding its thread that long, and a foreground `submit` on
 * another node that waits for the thread gives up after `remoteCancelWaitMs`.
 *
 * So while this node runs anything, every `epochPollIntervalMs` it reads the epoch of each running run's
 * thread (one read per run; the store's client sends them together) and aborts, with `interrupt`, every run
 * whose thread moved past its claim: the check the lease renewal makes before it renews, made sooner. It
 * only aborts; the run's own settlement writes afterwards, as after any interrupt, so two executions of a
 * thread never overlap. Reads never overlap, and no timer is left while nothing runs.
 */
import type { MailboxStore } from '../contract/store.js';
import type { Logger } from '../util/logger.js';
import type { ActiveRun } from './active-run.js';
import { errorMessage } from './errors.js';

export interface EpochWatchOptions {
  store: Pick<MailboxStore, 'currentDispatchEpoch'>;
  intervalMs: number;
  /** The runs of this node right now. */
  runs: () => Iterable<ActiveRun>;
  logger: Logger;
}

export class EpochWatch {
  readonly #opts: EpochWatchOptions;
  #timer: NodeJS.Timeout | null = null;
  #reading = false;
  #stopped = false;

  constructor(opts: EpochWatchOptions) {
    if (!(Number.isInteger(opts.intervalMs) && opts.intervalMs > 0)) {
      throw new RangeError('intervalMs must be a positive integer');
    }
    this.#opts = opts;
  }

  /** A run started: make sure a read is scheduled. */
  wake(): void {
    if (this.#stopped || this.#timer !== null || this.#reading) return;
    this.#timer = setTimeout(() => void this.#check(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #check(): Promise<void> {
    this.#timer = null;
    if (this.#stopped) return;
    const watched: ActiveRun[] = [];
    for (const run of this.#opts.runs()) if (run.executing && !run.aborted) watched.push(run);
    // Nothing runs: no timer until the next run starts (`wake`).
    if (watched.length === 0) return;
    this.#reading = true;
    try {
      await Promise.all(watched.map((run) => this.#checkRun(run)));
    } finally {
      this.#reading = false;
    }
    this.wake();
  }

  async #checkRun(run: ActiveRun): Promise<void> {
    const { store, logger } = this.#opts;
    const d = run.dispatch;
    let epoch: number;
    try {
      epoch = await store.currentDispatchEpoch(d.thread_id);
    } catch (err) {
      // The lease renewal reads it again before it renews; nothing is lost by skipping one read.
      logger.debug?.('reading the thread epoch failed', { ...run.label, error: errorMessage(err) });
      return;
    }
    if (epoch > d.dispatch_epoch && run.abort('interrupt')) {
      logger.info?.('thread interrupted past this claim; aborting the run', {
        ...run.label,
        dispatchEpoch: d.dispatch_epoch,
        threadEpoch: epoch,
      });
    }
  }
}

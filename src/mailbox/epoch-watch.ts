/**
 * Interrupts and cancels from other nodes, for runs without a live channel (every run on a store without
 * live commands, such as the Redis store without NATS; a run whose channel failed to open). An interrupt
 * moves the thread's epoch; with live commands it also sends the thread's run a live `Cancel`. Without them
 * the run would learn of it only at its next lease renewal (up to `leaseRenewalIntervalMs`, 10 s by
 * default), holding its thread that long, and a foreground `submit` on another node that waits for the
 * thread gives up after `remoteCancelWaitMs`. A `cancel(id)` from another node is recorded in the store
 * instead (`requestRunCancel`, on stores with cancel requests) and read the same way.
 *
 * So while such runs execute, every `epochPollIntervalMs` this node reads the epoch of each one's thread
 * (one read per run; a store connection with auto-pipelining sends them together) and aborts, with
 * `interrupt`, every run whose thread moved past its claim (the check the lease renewal makes before it
 * renews, made sooner), and with `cancel` every run whose claim a cancel request names. It only aborts; the run's own settlement writes afterwards, as after any interrupt,
 * so two executions of a thread never overlap. A run's reads never overlap (one that hangs only skips that
 * run until it answers), at most `MAX_EPOCH_READS` runs are read per interval (more take turns), and no
 * timer is left while none of them runs.
 */
import type { RunControl } from '../contract/cancel-requests.js';
import type { Logger } from '../util/logger.js';
import type { ActiveRun } from './active-run.js';
import { errorMessage } from './errors.js';

/** Most epoch reads started per interval; with more runs to watch, they take turns. */
export const MAX_EPOCH_READS = 256;

export interface EpochWatchOptions {
  /** The thread's epoch and latest cancel request (`runControlReader` of the store). */
  readControl: (threadId: string) => Promise<RunControl>;
  intervalMs: number;
  /** The runs of this node right now. */
  runs: () => Iterable<ActiveRun>;
  logger: Logger;
}

export class EpochWatch {
  readonly #opts: EpochWatchOptions;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** Runs whose epoch read has not answered yet. */
  readonly #reading = new Set<ActiveRun>();
  /** Where the next interval's reads start among the watched runs, when not all fit in one. */
  #turn = 0;

  constructor(opts: EpochWatchOptions) {
    if (!(Number.isInteger(opts.intervalMs) && opts.intervalMs > 0)) {
      throw new RangeError('intervalMs must be a positive integer');
    }
    this.#opts = opts;
  }

  /** A run started: make sure a check is scheduled. */
  wake(): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#timer = setTimeout(() => this.#check(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const watched: ActiveRun[] = [];
    for (const run of this.#opts.runs()) if (watches(run)) watched.push(run);
    // Nothing to watch: no timer until the next run starts (`wake`).
    if (watched.length === 0) return;
    const count = Math.min(watched.length, MAX_EPOCH_READS);
    const first = this.#turn % watched.length;
    this.#turn = first + count;
    for (let i = 0; i < count; i++) {
      const run = watched[(first + i) % watched.length] as ActiveRun;
      // A logger that throws is the only way this rejects; nothing is left to report it to.
      if (!this.#reading.has(run)) this.#checkRun(run).catch(() => undefined);
    }
    this.wake();
  }

  async #checkRun(run: ActiveRun): Promise<void> {
    const { readControl, logger } = this.#opts;
    const d = run.dispatch;
    this.#reading.add(run);
    let control: RunControl;
    try {
      control = await readControl(d.thread_id);
    } catch (err) {
      // The lease renewal reads it again before it renews; nothing is lost by skipping one read.
      logger.debug?.('reading the thread epoch failed', { ...run.label, error: errorMessage(err) });
      return;
    } finally {
      this.#reading.delete(run);
    }
    // Still executing (the executor may have returned meanwhile: then there is nothing left to abort).
    if (!watches(run)) return;
    if (control.epoch > d.dispatch_epoch) {
      if (run.abort('interrupt')) {
        logger.info?.('thread interrupted past this claim; aborting the run', {
          ...run.label,
          dispatchEpoch: d.dispatch_epoch,
          threadEpoch: control.epoch,
        });
      }
    } else if (control.cancelToken !== null && control.cancelToken === d.claim_token && run.abort('cancel')) {
      logger.info?.('cancel requested for this claim; aborting the run', run.label);
    }
  }
}

/** A run no live `Cancel` can reach, whose executor is still running and not aborted. */
function watches(run: ActiveRun): boolean {
  return run.executing && !run.aborted && !run.hasLiveChannel;
}

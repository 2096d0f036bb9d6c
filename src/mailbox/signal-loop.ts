/**
 * The dispatch-signal loop, as the Awaken server runs it: pull up to `batchSize` signals waiting at most
 * `fetchExpiresMs`, handle them with at most `maxConcurrentHandlers` in flight (the next pull starts as soon
 * as every entry of the batch has a handler slot), and sleep 250 ms after a failed pull. Entries pulled after
 * `stop()` began are nacked for immediate redelivery to another node.
 *
 * Bounded runs: a pull asks for no more signals than the Mailbox has free run slots (`capacity`), and while
 * none is free it does not pull at all, so the signals stay in the stream for nodes with room.
 */
import type { MailboxStore } from '../contract/store.js';
import type { DispatchSignalEntry } from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import { OutageLog } from '../util/outage-log.js';
import { PULL_ERROR_SLEEP_MS } from './config.js';
import { errorMessage } from './errors.js';
import type { RunSlots } from './run-slots.js';
import { Semaphore, interruptibleSleep } from './timing.js';

export interface SignalLoopOptions {
  store: MailboxStore;
  batchSize: number;
  fetchExpiresMs: number;
  maxConcurrentHandlers: number;
  /** Free run slots of the Mailbox: a pull takes at most that many signals. */
  capacity: Pick<RunSlots, 'free' | 'whenFree'>;
  handle(entry: DispatchSignalEntry): Promise<void>;
  logger: Logger;
}

export class SignalLoop {
  readonly #opts: SignalLoopOptions;
  readonly #slots: Semaphore;
  readonly #handlers = new Set<Promise<void>>();
  #stopping = false;
  #loop: Promise<void> | null = null;
  #cancelSleep: (() => void) | null = null;
  #wakeFromCapacityWait: (() => void) | null = null;

  constructor(opts: SignalLoopOptions) {
    this.#opts = opts;
    this.#slots = new Semaphore(opts.maxConcurrentHandlers);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stop pulling (a pull in flight finishes within `fetchExpiresMs`) and wait for every handler. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cancelSleep?.();
    this.#wakeFromCapacityWait?.();
    await this.#loop;
    await Promise.allSettled([...this.#handlers]);
  }

  async #run(): Promise<void> {
    const { store, batchSize, fetchExpiresMs, logger, capacity } = this.#opts;
    // One warning per outage (and one line when it recovers), not one per 250 ms retry.
    const pullOutage = new OutageLog(logger, 'dispatch signal pull');
    while (!this.#stopping) {
      if (capacity.free === 0) {
        await new Promise<void>((resolve) => {
          this.#wakeFromCapacityWait = resolve;
          void capacity.whenFree().then(resolve);
        });
        this.#wakeFromCapacityWait = null;
        continue;
      }
      let entries: DispatchSignalEntry[];
      try {
        entries = await store.pullDispatchSignals(Math.min(batchSize, capacity.free), fetchExpiresMs);
        pullOutage.succeeded();
      } catch (err) {
        pullOutage.failed(err);
        const pause = interruptibleSleep(PULL_ERROR_SLEEP_MS, { unref: true });
        this.#cancelSleep = pause.cancel;
        await pause.promise;
        this.#cancelSleep = null;
        continue;
      }
      for (const entry of entries) {
        if (this.#stopping) {
          this.#settle(entry.receipt.nack(), 'nack');
          continue;
        }
        await this.#slots.acquire();
        const handler = this.#opts
          .handle(entry)
          .catch((err: unknown) => {
            logger.error?.('dispatch signal handler failed', {
              threadId: entry.thread_id,
              dispatchId: entry.dispatch_id,
              error: errorMessage(err),
            });
          })
          .finally(() => {
            this.#slots.release();
            this.#handlers.delete(handler);
          });
        this.#handlers.add(handler);
      }
    }
  }

  #settle(op: Promise<void>, what: string): void {
    op.catch((err: unknown) =>
      this.#opts.logger.warn?.(`dispatch signal ${what} failed`, { error: errorMessage(err) }),
    );
  }
}

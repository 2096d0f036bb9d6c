/**
 * The dispatch-signal loop (contract.md §13 I, upstream-nats.md §2.6): pull up to `batchSize` signals waiting at
 * most `fetchExpiresMs`, handle them with at most `maxConcurrentHandlers` in flight (the next pull starts as soon
 * as every entry of the batch has a handler slot), and sleep 250 ms after a failed pull. Entries pulled after
 * `stop()` began are nacked for immediate redelivery to another node.
 */
import type { MailboxStore } from '../contract/store.js';
import type { DispatchSignalEntry } from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import { PULL_ERROR_SLEEP_MS } from './config.js';
import { errorMessage } from './errors.js';
import { Semaphore, interruptibleSleep } from './timing.js';

export interface SignalLoopOptions {
  store: MailboxStore;
  batchSize: number;
  fetchExpiresMs: number;
  maxConcurrentHandlers: number;
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
    await this.#loop;
    await Promise.allSettled([...this.#handlers]);
  }

  async #run(): Promise<void> {
    const { store, batchSize, fetchExpiresMs, logger } = this.#opts;
    while (!this.#stopping) {
      let entries: DispatchSignalEntry[];
      try {
        entries = await store.pullDispatchSignals(batchSize, fetchExpiresMs);
      } catch (err) {
        logger.warn?.('dispatch signal pull failed', { error: errorMessage(err) });
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

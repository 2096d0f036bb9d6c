/**
 * The live channels of this node's runs. With a store that can serve a thread's runs on one subscription
 * (`openThreadRuns`, the Redis store with NATS), a worker keeps that subscription while it runs the thread's
 * dispatches one after another, and each run takes its stream from it without a round trip; the subscription
 * is dropped once the worker is idle. Other stores (and targets the shared subscription cannot serve) get one
 * channel per run, `openLiveChannelFor`. A store that says no live command can reach its runs
 * (`liveCommands: false`, the Redis store without NATS, whose channels are empty streams) gets none: a channel,
 * its forwarder and its close per run would be work for nothing.
 */
import type { LiveRunCommandStream, LiveRunTarget } from '../contract/types.js';
import type { MailboxStore } from '../contract/store.js';
import type { ThreadRunsLive } from '../live/channel.js';
import { errorMessage } from './errors.js';
import type { Logger } from '../util/logger.js';

interface ThreadRunsStore {
  openThreadRuns(threadId: string, holdsThread: () => boolean): Promise<ThreadRunsLive | null>;
}

function hasThreadRuns(store: MailboxStore): store is MailboxStore & ThreadRunsStore {
  return typeof (store as Partial<ThreadRunsStore>).openThreadRuns === 'function';
}

/**
 * Only an explicit `liveCommands: false` turns the channels off; stores that do not say (or a wrapper that
 * fails to answer) have them.
 */
function hasLiveCommands(store: MailboxStore): boolean {
  try {
    return (store as { liveCommands?: unknown }).liveCommands !== false;
  } catch {
    return true;
  }
}

export class RunLiveChannels {
  readonly #store: MailboxStore;
  readonly #logger: Logger;
  readonly #holdsThread: (threadId: string) => boolean;
  /** Open (or opening) thread subscriptions by thread id. */
  readonly #threads = new Map<string, Promise<ThreadRunsLive | null>>();
  /** Whether runs get live channels at all (see the module comment); fixed for the store's life. */
  readonly enabled: boolean;

  constructor(store: MailboxStore, logger: Logger, holdsThread: (threadId: string) => boolean) {
    this.#store = store;
    this.enabled = hasLiveCommands(store);
    this.#logger = logger;
    this.#holdsThread = holdsThread;
  }

  /** The live stream of the run of `target`. */
  async open(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    const store = this.#store;
    if (hasThreadRuns(store)) {
      const runs = await this.#threadRuns(store, target.thread_id);
      const stream = runs?.openRun(target);
      if (stream) return stream;
    }
    return store.openLiveChannelFor(target);
  }

  /**
   * A claim of the thread is about to be sent: start subscribing to its runs now, so that the subscription's
   * round trip (the run waits for it before it starts) overlaps the claim's instead of following it. When the
   * claim finds nothing, `release` drops it as usual.
   */
  prepare(threadId: string): void {
    const store = this.#store;
    if (this.enabled && hasThreadRuns(store)) void this.#threadRuns(store, threadId);
  }

  /** This node runs nothing of `threadId` any more: unsubscribe from its runs. */
  release(threadId: string): void {
    const runs = this.#threads.get(threadId);
    if (runs === undefined) return;
    this.#threads.delete(threadId);
    void this.#close(runs);
  }

  /** Unsubscribe from every thread `busy` does not name (stop: runs that outlive it keep theirs). */
  async closeIdle(busy: (threadId: string) => boolean): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [threadId, runs] of this.#threads) {
      if (busy(threadId)) continue;
      this.#threads.delete(threadId);
      closing.push(this.#close(runs));
    }
    await Promise.all(closing);
  }

  #threadRuns(store: ThreadRunsStore, threadId: string): Promise<ThreadRunsLive | null> {
    let runs = this.#threads.get(threadId);
    if (runs === undefined) {
      runs = this.#subscribe(store, threadId).catch((err: unknown) => {
        // The run's own channel is tried next (and warns if it fails too); the next run tries again.
        this.#logger.debug?.('opening the thread live subscription failed', {
          threadId,
          error: errorMessage(err),
        });
        if (this.#threads.get(threadId) === runs) this.#threads.delete(threadId);
        return null;
      });
      this.#threads.set(threadId, runs);
    }
    return runs;
  }

  /** Sent at once; a store that throws instead of rejecting fails the same way (never the claim beside it). */
  #subscribe(store: ThreadRunsStore, threadId: string): Promise<ThreadRunsLive | null> {
    try {
      return Promise.resolve(store.openThreadRuns(threadId, () => this.#holdsThread(threadId)));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async #close(runs: Promise<ThreadRunsLive | null>): Promise<void> {
    try {
      await (await runs)?.close();
    } catch (err) {
      this.#logger.warn?.('closing a thread live subscription failed', { error: errorMessage(err) });
    }
  }
}

/**
 * The live channels of this node's runs. With a store that can serve a thread's runs on one subscription
 * (`openThreadRuns`, the Redis store with NATS), a worker keeps that subscription while it runs the thread's
 * dispatches one after another, and each run takes its stream from it without a round trip. Once the worker
 * is idle (its run ended, or a claim found nothing) the subscription lingers for `lingerMs` (the Mailbox's
 * `liveSubscriptionLingerMs`): a thread whose next dispatch comes soon (a steady flow of dispatches on a
 * thread, rather than a backlog) reuses it instead of paying a SUB, a PING round trip and an UNSUB per
 * dispatch (measured: most of nats-server's CPU and a sixth of a node's at 2 000 dispatches/s). At most
 * `MAX_LINGERING_THREADS` linger; the oldest idle one goes first. A lingering subscription answers nothing
 * (no run of the thread is registered on it), as between two runs of a chain. Other stores (and targets the
 * shared subscription cannot serve) get one channel per run, `openLiveChannelFor`. A store that says no live
 * command can reach its runs (`liveCommands: false`, the Redis store without NATS, whose channels are empty
 * streams) gets none: a channel, its forwarder and its close per run would be work for nothing.
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
export function hasLiveCommands(store: MailboxStore): boolean {
  try {
    return (store as { liveCommands?: unknown }).liveCommands !== false;
  } catch {
    return true;
  }
}

/** Idle thread subscriptions kept at most per Mailbox (beyond it the one idle longest is dropped). */
export const MAX_LINGERING_THREADS = 4096;

/** Shortest period of the sweep that drops expired lingering subscriptions. */
const MIN_LINGER_SWEEP_MS = 50;

export class RunLiveChannels {
  readonly #store: MailboxStore;
  readonly #logger: Logger;
  readonly #holdsThread: (threadId: string) => boolean;
  readonly #lingerMs: number;
  /** Open (or opening) thread subscriptions by thread id, lingering ones included. */
  readonly #threads = new Map<string, Promise<ThreadRunsLive | null>>();
  /**
   * Threads whose subscription lingers, by when they became idle (`performance.now()`, which never jumps
   * back; insertion order: idle longest first).
   */
  readonly #idleSince = new Map<string, number>();
  #lingerSweep: ReturnType<typeof setInterval> | null = null;
  /** After `closeIdle` (the Mailbox stops): nothing lingers any more. */
  #closed = false;
  /** Whether runs get live channels at all (see the module comment); fixed for the store's life. */
  readonly enabled: boolean;

  constructor(store: MailboxStore, logger: Logger, holdsThread: (threadId: string) => boolean, lingerMs = 0) {
    this.#store = store;
    this.enabled = hasLiveCommands(store);
    this.#logger = logger;
    this.#holdsThread = holdsThread;
    this.#lingerMs = lingerMs;
  }

  /** Thread subscriptions held (lingering ones included). */
  get subscribedThreads(): number {
    return this.#threads.size;
  }

  /** Thread subscriptions lingering. */
  get lingeringThreads(): number {
    return this.#idleSince.size;
  }

  /** The live stream of the run of `target`. */
  async open(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    const store = this.#store;
    if (hasThreadRuns(store)) {
      let pending = this.#threadRuns(store, target.thread_id);
      let runs = await pending;
      if (runs?.closed === true) {
        // Closed under us (the connection dropped for good, the server revoked it) while it lingered:
        // subscribe again rather than give every later run of the thread a channel of its own.
        if (this.#threads.get(target.thread_id) === pending) this.#threads.delete(target.thread_id);
        void this.#close(pending); // so its channel forgets it too
        pending = this.#threadRuns(store, target.thread_id);
        runs = await pending;
      }
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

  /**
   * This node runs nothing of `threadId` any more: its subscription lingers (see the module comment), or is
   * dropped at once without a linger period or once the Mailbox stops.
   */
  release(threadId: string): void {
    if (!this.#threads.has(threadId)) return;
    if (this.#lingerMs > 0 && !this.#closed) this.#linger(threadId);
    else this.#drop(threadId);
  }

  /** Unsubscribe from every thread `busy` does not name (stop: runs that outlive it keep theirs). */
  async closeIdle(busy: (threadId: string) => boolean): Promise<void> {
    this.#closed = true;
    this.#idleSince.clear();
    if (this.#lingerSweep !== null) clearInterval(this.#lingerSweep);
    this.#lingerSweep = null;
    const closing: Promise<void>[] = [];
    for (const [threadId, runs] of this.#threads) {
      if (busy(threadId)) continue;
      this.#threads.delete(threadId);
      closing.push(this.#close(runs));
    }
    await Promise.all(closing);
  }

  #linger(threadId: string): void {
    this.#idleSince.delete(threadId);
    this.#idleSince.set(threadId, performance.now());
    if (this.#idleSince.size > MAX_LINGERING_THREADS) {
      const oldest = this.#idleSince.keys().next().value as string;
      this.#drop(oldest);
    }
    if (this.#lingerSweep === null) {
      this.#lingerSweep = setInterval(
        () => this.#dropExpired(),
        Math.max(MIN_LINGER_SWEEP_MS, Math.ceil(this.#lingerMs / 4)),
      );
      this.#lingerSweep.unref?.();
    }
  }

  #dropExpired(): void {
    const cutoff = performance.now() - this.#lingerMs;
    for (const [threadId, since] of this.#idleSince) {
      if (since > cutoff) break;
      this.#drop(threadId);
    }
    if (this.#idleSince.size === 0 && this.#lingerSweep !== null) {
      clearInterval(this.#lingerSweep);
      this.#lingerSweep = null;
    }
  }

  #drop(threadId: string): void {
    this.#idleSince.delete(threadId);
    const runs = this.#threads.get(threadId);
    if (runs === undefined) return;
    this.#threads.delete(threadId);
    void this.#close(runs);
  }

  #threadRuns(store: ThreadRunsStore, threadId: string): Promise<ThreadRunsLive | null> {
    // Wanted again: no longer idle.
    this.#idleSince.delete(threadId);
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

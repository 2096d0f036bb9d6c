/**
 * The consuming side of the lifecycle feed: `openLifecycleFeed(store)` follows every node's transitions,
 * as events (`on('event' | <type>)`), as an async iterator, or per dispatch with `waitUntilFinished`.
 *
 * Guarantees:
 * - Events are what publishers saw, in the order each publisher sent them; events of different nodes
 *   interleave in arrival order (a dispatch's `started` on node B may arrive before its `enqueued` from
 *   producer A). Timestamps (`at`) are the publishing node's clock.
 * - Delivery is at most once, and only best effort: NATS delivers to processes subscribed at that moment;
 *   the Redis Stream keeps the last `streamMaxLen` entries, so a consumer that falls further behind (or
 *   joins later) misses what was trimmed; a publisher whose transport is down drops events past its buffer.
 * - `waitUntilFinished` does not depend on any of that: it reads the record when called, again when the
 *   feed reports the dispatch finishing, and every `pollMs` in between, so it answers with the terminal
 *   record even when every feed message was lost.
 * - Bounded: each async iterator buffers at most `bufferSize` events (the oldest are dropped and counted in
 *   `dropped`); listeners get events as they arrive.
 */
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type { MailboxStore } from '../contract/store.js';
import type { RunDispatch, RunDispatchStatus } from '../contract/types.js';
import { isTerminal } from '../contract/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { feedTransportFor, type FeedSubscription, type FeedTransport } from './transport.js';
import { FINISHING_EVENT_TYPES } from './types.js';
import type { FeedStart, LifecycleEvent, LifecycleEventType } from './types.js';

export interface OpenLifecycleFeedOptions {
  /**
   * `now` (default): events published from now on. `oldest`: first every event the Redis Stream still holds
   * (Redis Stream transport only; NATS and memory keep no history).
   */
  from?: FeedStart;
  /** Events each async iterator buffers at most (default 10 000). */
  bufferSize?: number;
  /** Default: the transport of the store (NATS when it has NATS, else its Redis Stream; memory: in-process). */
  transport?: FeedTransport;
  logger?: Logger;
}

export interface WaitUntilFinishedOptions {
  /** Give up after this long: rejects with `Io` naming the last status seen. */
  timeoutMs: number;
  /** How often the record is read while no feed event says the dispatch finished (default 1000 ms). */
  pollMs?: number;
}

export type LifecycleFeedEvents = {
  event: [event: LifecycleEvent];
  /** A transport error (the feed keeps going). Emitted only when someone listens. */
  error: [error: Error];
} & { [K in LifecycleEventType]: [event: LifecycleEvent] };

const MAX_TIMER_MS = 2_147_483_647;

const openSchema = z
  .object({
    from: z.enum(['now', 'oldest']).optional(),
    bufferSize: z.number().int().min(1).max(10_000_000).optional(),
  })
  .passthrough();

const waitSchema = z
  .object({
    timeoutMs: z.number().int().min(0).max(MAX_TIMER_MS),
    pollMs: z.number().int().min(10).max(MAX_TIMER_MS).optional(),
  })
  .strict();

function validation(what: string, error: z.ZodError): StorageError {
  const issue = error.issues[0];
  const path = issue?.path.join('.') ?? '';
  return StorageError.validation(`${what}${path ? `.${path}` : ''}: ${issue?.message ?? 'invalid'}`);
}

/** One async iterator's queue. */
class Cursor {
  readonly queue: LifecycleEvent[] = [];
  wake: (() => void) | null = null;
  done = false;
}

export class LifecycleFeed
  extends EventEmitter<LifecycleFeedEvents>
  implements AsyncIterable<LifecycleEvent>
{
  readonly transport: string;
  readonly #store: MailboxStore;
  readonly #bufferSize: number;
  readonly #logger: Logger;
  readonly #cursors = new Set<Cursor>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #rejectOnClose = new Set<(err: StorageError) => void>();
  #subscription: FeedSubscription | null = null;
  #dropped = 0;
  #malformed = 0;
  #closed = false;

  /** Use `openLifecycleFeed`. */
  constructor(store: MailboxStore, transport: FeedTransport, bufferSize: number, logger: Logger) {
    super();
    this.#store = store;
    this.transport = transport.kind;
    this.#bufferSize = bufferSize;
    this.#logger = logger;
  }

  /** @internal */
  async subscribe(transport: FeedTransport, from: FeedStart): Promise<void> {
    this.#subscription = await transport.subscribe(from, {
      events: (events) => this.#receive(events),
      malformed: () => this.#malformed++,
      error: (err) => this.#transportError(err),
    });
  }

  /** Events the async iterators dropped because their buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Messages that were not valid feed batches (dropped). */
  get malformed(): number {
    return this.#malformed;
  }

  #receive(events: readonly LifecycleEvent[]): void {
    if (this.#closed) return;
    for (const e of events) {
      for (const cursor of this.#cursors) {
        if (cursor.queue.length >= this.#bufferSize) {
          cursor.queue.shift();
          this.#dropped++;
        }
        cursor.queue.push(e);
        cursor.wake?.();
      }
      this.#emitSafely('event', e);
      this.#emitSafely(e.type, e);
      if (FINISHING_EVENT_TYPES.has(e.type)) {
        for (const check of this.#waiters.get(e.dispatch_id) ?? []) check();
      }
    }
  }

  #emitSafely(name: keyof LifecycleFeedEvents, e: LifecycleEvent): void {
    try {
      (this.emit as (n: string, ev: LifecycleEvent) => boolean)(name, e);
    } catch (err) {
      this.#logger.error?.('lifecycle feed listener threw', {
        event: name,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  #transportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.#logger.warn?.('lifecycle feed transport error', { error: error.message });
  }

  /**
   * Resolve with the dispatch's record once it is terminal (Acked, DeadLetter, Cancelled, Superseded):
   * exact whether or not the feed delivers its events (see the module comment). Rejects with `NotFound`
   * when there is no such dispatch (never enqueued, or purged), `Io` after `timeoutMs` or when the feed
   * closes, and `Validation` for bad arguments. Read errors of the store are retried at the next poll.
   */
  waitUntilFinished(dispatchId: string, options: WaitUntilFinishedOptions): Promise<RunDispatch> {
    let id: string;
    let timeoutMs: number;
    let pollMs: number;
    try {
      id = args.id('dispatchId', dispatchId);
      const parsed = waitSchema.safeParse(options);
      if (!parsed.success) throw validation('options', parsed.error);
      timeoutMs = parsed.data.timeoutMs;
      pollMs = parsed.data.pollMs ?? 1_000;
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closed) return Promise.reject(StorageError.io('lifecycle feed is closed'));
    return new Promise<RunDispatch>((resolve, reject) => {
      let done = false;
      let reading = false;
      let again = false;
      let lastStatus: RunDispatchStatus | null = null;
      let lastError: string | null = null;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearInterval(poll);
        clearTimeout(timeout);
        const set = this.#waiters.get(id);
        set?.delete(check);
        if (set?.size === 0) this.#waiters.delete(id);
        this.#rejectOnClose.delete(onClose);
        settle();
      };
      const check = (): void => {
        if (done) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        void (async () => {
          try {
            do {
              again = false;
              const d = await this.#store.loadDispatch(id);
              if (done) return;
              if (d === null) return finish(() => reject(StorageError.notFound(id)));
              lastStatus = d.status;
              if (isTerminal(d.status)) return finish(() => resolve(d));
            } while (again && !done);
          } catch (err) {
            // Transient (store unreachable): the next poll tries again; the timeout still bounds the wait.
            lastError = err instanceof Error ? err.message : String(err);
          } finally {
            reading = false;
          }
        })();
      };
      const onClose = (err: StorageError): void => finish(() => reject(err));
      const poll = setInterval(check, pollMs);
      const timeout = setTimeout(
        () =>
          finish(() =>
            reject(
              StorageError.io(
                `dispatch '${id}' did not finish within ${timeoutMs} ms (last status: ${lastStatus ?? 'unknown'}${
                  lastError ? `; last read error: ${lastError}` : ''
                })`,
              ),
            ),
          ),
        timeoutMs,
      );
      let set = this.#waiters.get(id);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(id, set);
      }
      set.add(check);
      this.#rejectOnClose.add(onClose);
      check();
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<LifecycleEvent> {
    const cursor = new Cursor();
    if (this.#closed) cursor.done = true;
    else this.#cursors.add(cursor);
    const end = (): IteratorReturnResult<undefined> => {
      cursor.done = true;
      this.#cursors.delete(cursor);
      return { done: true, value: undefined };
    };
    return {
      next: async (): Promise<IteratorResult<LifecycleEvent>> => {
        for (;;) {
          const e = cursor.queue.shift();
          if (e !== undefined) return { done: false, value: e };
          if (cursor.done) return end();
          await new Promise<void>((wake) => (cursor.wake = wake));
          cursor.wake = null;
        }
      },
      return: async () => end(),
    };
  }

  /** Unsubscribe, end the iterators (after what they buffered) and reject pending waits. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const cursor of this.#cursors) {
      cursor.done = true;
      cursor.wake?.();
    }
    const err = StorageError.io('lifecycle feed is closed');
    for (const reject of [...this.#rejectOnClose]) reject(err);
    await this.#subscription?.close();
  }
}

/**
 * Follow the lifecycle feed of `store`'s namespace (every process that attached a publisher with
 * `attachLifecycleFeed`). Resolves once subscribed: with `from: 'now'`, every event published after that
 * reaches it (transport permitting, see the module comment).
 */
export async function openLifecycleFeed(
  store: MailboxStore,
  options: OpenLifecycleFeedOptions = {},
): Promise<LifecycleFeed> {
  if (!store || typeof store.loadDispatch !== 'function') {
    throw StorageError.validation('store must be a MailboxStore');
  }
  const parsed = openSchema.safeParse(options);
  if (!parsed.success) throw validation('options', parsed.error);
  const transport = options.transport ?? feedTransportFor(store);
  const feed = new LifecycleFeed(
    store,
    transport,
    parsed.data.bufferSize ?? 10_000,
    options.logger ?? silentLogger,
  );
  await feed.subscribe(transport, parsed.data.from ?? 'now');
  return feed;
}

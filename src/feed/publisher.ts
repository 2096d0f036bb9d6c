/**
 * The publishing side of the lifecycle feed: `attachLifecycleFeed({store, mailbox})` turns a node's
 * transitions into feed events and sends them in batches.
 *
 * Sources: the Mailbox's events (claimed, started, completed, retried, deadLettered, superseded, cancelled,
 * handedBack), and the store's `enqueue` and `requeueDeadLetter`, wrapped on the store instance (so work
 * enqueued through that store object is seen, whoever calls it). Attach it on every node, and on every
 * producer whose `enqueued` events you want to see.
 *
 * Cost on the hot path: one small object pushed on an array per transition. Batches leave at most
 * `flushMs` later (or at once when `maxBatch` events are waiting), one message per batch: one NATS publish
 * or one XADD for up to `maxBatch` events. Bounded: at most `maxBuffered` events wait; past that (transport
 * down) the oldest are dropped and counted in `dropped`, with one warning per outage.
 */
import { z } from 'zod';
import { StorageError } from '../contract/errors.js';
import type { MailboxStore } from '../contract/store.js';
import type { RunDispatch, RunDispatchInput } from '../contract/types.js';
import type { MailboxEvents } from '../mailbox/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { OutageLog } from '../util/outage-log.js';
import { feedTransportFor, type FeedTransport } from './transport.js';
import { MAX_EVENT_TEXT } from './types.js';
import type { LifecycleEvent, LifecycleEventType } from './types.js';
import type { EventEmitter } from 'node:events';

/** The part of a Mailbox the publisher listens to. */
export interface FeedMailbox extends EventEmitter<MailboxEvents> {
  readonly consumerId: string;
}

export interface LifecycleFeedPublisherOptions {
  store: MailboxStore;
  /** The Mailbox whose events to publish; without one only enqueues and requeues are published. */
  mailbox?: FeedMailbox;
  /** `node` of the events (default: the Mailbox's consumer id, else null). */
  node?: string | null;
  /** Events per message at most (default 64). */
  maxBatch?: number;
  /** Longest an event waits before its batch is sent (default 20 ms). */
  flushMs?: number;
  /** Events waiting at most; the oldest are dropped past it (default 10 000). */
  maxBuffered?: number;
  /** Cap of the Redis Stream transport, in entries (default 2 000, approximate). */
  streamMaxLen?: number;
  /** Default: the transport of the store (see transport.ts). */
  transport?: FeedTransport;
  logger?: Logger;
}

export interface LifecycleFeedPublisher {
  readonly transport: string;
  /** Events dropped because the buffer was full (the transport was down or too slow). */
  readonly dropped: number;
  /** Send what is buffered now; resolves when it was handed to the transport (or could not be). */
  flush(): Promise<void>;
  /** Stop listening, send what is buffered, and leave the store's methods as plain pass-throughs. */
  close(): Promise<void>;
}

const optionsSchema = z.object({
  node: z.string().min(1).nullable().optional(),
  maxBatch: z.number().int().min(1).max(10_000).optional(),
  flushMs: z.number().int().min(0).max(60_000).optional(),
  maxBuffered: z.number().int().min(1).max(10_000_000).optional(),
  streamMaxLen: z.number().int().min(1).max(100_000_000).optional(),
});

function cut(text: string): string {
  return text.length > MAX_EVENT_TEXT ? text.slice(0, MAX_EVENT_TEXT) : text;
}

function fromRecord(
  type: LifecycleEventType,
  d: Pick<RunDispatch, 'dispatch_id' | 'thread_id' | 'run_id' | 'status' | 'attempt_count' | 'updated_at'>,
  node: string | null,
): LifecycleEvent {
  return {
    type,
    dispatch_id: d.dispatch_id,
    thread_id: d.thread_id,
    run_id: d.run_id,
    status: d.status,
    attempt_count: d.attempt_count,
    at: d.updated_at,
    node,
  };
}

type Method = (...args: unknown[]) => unknown;

/** The open publishers attached to each store object (see `wrapStore`). */
const storePublishers = new WeakMap<MailboxStore, Set<Publisher>>();

function first(publishers: Set<Publisher>): Publisher | undefined {
  for (const p of publishers) return p;
  return undefined;
}

/** Wrap `enqueue` and `requeueDeadLetter` of the store instance, for its publishers (one, at most, each). */
function wrapStoreOnce(store: MailboxStore, publishers: Set<Publisher>): void {
  const target = store as unknown as Record<string, unknown>;
  const wrap = (name: string, after: (p: Publisher, args: unknown[], result: unknown) => void): void => {
    const original = target[name];
    if (typeof original !== 'function') return;
    const bound = (original as Method).bind(store) as Method;
    target[name] = async (...a: unknown[]) => {
      const result = await bound(...a);
      const publisher = first(publishers);
      if (publisher !== undefined) after(publisher, a, result);
      return result;
    };
  };
  wrap('enqueue', (p, [input]) => {
    const d = input as RunDispatchInput;
    p.push({
      type: 'enqueued',
      dispatch_id: d.dispatch_id,
      thread_id: d.thread_id,
      run_id: d.run_id,
      status: 'Queued',
      attempt_count: d.attempt_count ?? 0,
      at: d.updated_at ?? d.created_at,
      node: p.node,
    });
  });
  wrap('requeueDeadLetter', (p, _a, result) => p.push(fromRecord('requeued', result as RunDispatch, p.node)));
}

class Publisher implements LifecycleFeedPublisher {
  readonly #transport: FeedTransport;
  readonly #node: string | null;
  readonly #maxBatch: number;
  readonly #flushMs: number;
  readonly #maxBuffered: number;
  readonly #outage: OutageLog;
  readonly #detach: (() => void)[] = [];
  #buffer: LifecycleEvent[] = [];
  #timer: NodeJS.Timeout | null = null;
  #sending: Promise<void> | null = null;
  #dropped = 0;
  #closed = false;

  constructor(
    transport: FeedTransport,
    node: string | null,
    o: z.infer<typeof optionsSchema>,
    logger: Logger,
  ) {
    this.#transport = transport;
    this.#node = node;
    this.#maxBatch = o.maxBatch ?? 64;
    this.#flushMs = o.flushMs ?? 20;
    this.#maxBuffered = o.maxBuffered ?? 10_000;
    this.#outage = new OutageLog(logger, 'lifecycle feed publish');
  }

  get transport(): string {
    return this.#transport.kind;
  }

  get dropped(): number {
    return this.#dropped;
  }

  push(event: LifecycleEvent): void {
    if (this.#closed) return;
    if (this.#buffer.length >= this.#maxBuffered) {
      this.#buffer.shift();
      this.#dropped++;
    }
    this.#buffer.push(event);
    if (this.#buffer.length >= this.#maxBatch) this.#kick();
    else this.#timer ??= setTimeout(() => this.#kick(), this.#flushMs).unref();
  }

  listen(mailbox: FeedMailbox): void {
    const node = this.#node;
    const on = <K extends keyof MailboxEvents>(event: K, fn: (...a: MailboxEvents[K]) => void): void => {
      const listener = fn as (...a: unknown[]) => void;
      (mailbox.on as (e: K, l: (...a: unknown[]) => void) => unknown)(event, listener);
      this.#detach.push(() =>
        (mailbox.off as (e: K, l: (...a: unknown[]) => void) => unknown)(event, listener),
      );
    };
    on('claimed', (d) => this.push(fromRecord('claimed', d, node)));
    on('started', (d) => this.push(fromRecord('started', d, node)));
    on('completed', (d) => this.push(fromRecord('completed', d, node)));
    on('retried', (d, error, retryAt) =>
      this.push({ ...fromRecord('retried', d, node), error: cut(error), retry_at: retryAt }),
    );
    on('deadLettered', (d, error) =>
      this.push({ ...fromRecord('deadLettered', d, node), error: cut(error) }),
    );
    on('superseded', (d) => this.push(fromRecord('superseded', d, node)));
    on('cancelled', (d) => this.push(fromRecord('cancelled', d, node)));
    on('handedBack', (d, reason) => this.push({ ...fromRecord('handedBack', d, node), error: cut(reason) }));
  }

  /**
   * Publish the store's enqueues and requeues. The store's methods are wrapped once, whatever the number of
   * publishers attached to it (several Mailboxes may share one store object): each event goes to ONE open
   * publisher of the store, the oldest, so nothing is published twice.
   */
  wrapStore(store: MailboxStore): void {
    let publishers = storePublishers.get(store);
    if (publishers === undefined) {
      publishers = new Set();
      storePublishers.set(store, publishers);
      wrapStoreOnce(store, publishers);
    }
    publishers.add(this);
    this.#detach.push(() => publishers.delete(this));
  }

  get node(): string | null {
    return this.#node;
  }

  #kick(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#sending ??= this.#send().then((sent) => {
      this.#sending = null;
      // Events pushed while the last send was in flight; after a failure the retry timer takes over.
      if (sent && this.#buffer.length > 0 && !this.#closed) this.#kick();
    });
  }

  /** Send the buffer in batches; false when the transport failed (the events stay buffered). */
  async #send(): Promise<boolean> {
    while (this.#buffer.length > 0) {
      // Taken out before the await: pushes (and overflow drops) meanwhile only touch what is left.
      const batch = this.#buffer.splice(0, this.#maxBatch);
      try {
        await this.#transport.publish(this.#node, batch);
        this.#outage.succeeded();
      } catch (err) {
        // Back at the front for the next attempt, within the buffer bound; retried after flushMs.
        this.#buffer = batch.concat(this.#buffer);
        const excess = this.#buffer.length - this.#maxBuffered;
        if (excess > 0) {
          this.#buffer.splice(0, excess);
          this.#dropped += excess;
        }
        this.#outage.failed(err);
        if (!this.#closed)
          this.#timer ??= setTimeout(() => this.#kick(), Math.max(this.#flushMs, 100)).unref();
        return false;
      }
    }
    return true;
  }

  async flush(): Promise<void> {
    this.#kick();
    await this.#sending;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const detach of this.#detach.splice(0)) detach();
    await this.flush();
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/**
 * Publish `options.mailbox`'s transitions and the store's enqueues and dead-letter requeues on the feed of
 * `options.store`. Returns the publisher; `close()` it before closing the store.
 */
export function attachLifecycleFeed(options: LifecycleFeedPublisherOptions): LifecycleFeedPublisher {
  if (!options || typeof options !== 'object') throw StorageError.validation('options must be an object');
  const { store, mailbox } = options;
  if (!store || typeof store.enqueue !== 'function')
    throw StorageError.validation('store must be a MailboxStore');
  if (mailbox !== undefined && (typeof mailbox.on !== 'function' || typeof mailbox.consumerId !== 'string')) {
    throw StorageError.validation('mailbox must be a Mailbox');
  }
  const parsed = optionsSchema.safeParse({
    node: options.node,
    maxBatch: options.maxBatch,
    flushMs: options.flushMs,
    maxBuffered: options.maxBuffered,
    streamMaxLen: options.streamMaxLen,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw StorageError.validation(`options.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const transport = options.transport ?? feedTransportFor(store, { streamMaxLen: parsed.data.streamMaxLen });
  const node = parsed.data.node !== undefined ? parsed.data.node : (mailbox?.consumerId ?? null);
  const publisher = new Publisher(transport, node, parsed.data, options.logger ?? silentLogger);
  publisher.wrapStore(store);
  if (mailbox !== undefined) publisher.listen(mailbox);
  return publisher;
}

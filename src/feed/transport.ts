/**
 * How feed messages travel, chosen from the store:
 * - a Redis store with NATS: core NATS subject `<namespace>.feed` (`awaken.mailbox.feed` without a namespace),
 *   fire-and-forget, seen only by processes subscribed at that moment;
 * - a Redis store without NATS: the capped Redis Stream `awaken:{<ns>}:feed` (XADD MAXLEN ~), which consumers
 *   read from where they joined (or from its oldest retained entry);
 * - the memory store: an in-process bus of that store instance.
 * A store of your own can bring its transport (`options.transport`).
 */
import { EventEmitter } from 'node:events';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Redis } from 'ioredis';
import { StorageError } from '../contract/errors.js';
import type { MailboxStore } from '../contract/store.js';
import { MemoryMailboxStore } from '../memory/store.js';
import type { RedisKeys } from '../redis/keys.js';
import type { FeedStart, LifecycleEvent } from './types.js';
import { decodeBatch, encodeBatch } from './wire.js';

export interface FeedSubscription {
  close(): Promise<void>;
}

/** What a subscription hands its consumer. */
export interface FeedSink {
  /** A batch of events, in the order its publisher sent them. Treat them as read-only. */
  events(events: readonly LifecycleEvent[]): void;
  /** A message that was not a valid feed batch (dropped). */
  malformed(): void;
  /** A delivery error; the subscription keeps trying. */
  error(err: unknown): void;
}

/**
 * Moves batches of events. Transports between processes encode them with `encodeBatch` / `decodeBatch`
 * (wire.ts); the in-process one hands the arrays over as they are.
 */
export interface FeedTransport {
  readonly kind: string;
  /** Send one batch of `node`'s events. Rejects when the transport cannot take it (the publisher retries). */
  publish(node: string | null, events: readonly LifecycleEvent[]): Promise<void>;
  /**
   * Deliver every batch published after this resolves (`now`), or every batch still retained (`oldest`,
   * transports with history only), until the subscription is closed.
   */
  subscribe(start: FeedStart, sink: FeedSink): Promise<FeedSubscription>;
}

function deliver(message: string, sink: FeedSink): void {
  const events = decodeBatch(message);
  if (events === null) sink.malformed();
  else sink.events(events);
}

/** Default cap of the Redis Stream, in entries (each a batch of at most `maxBatch` events). */
export const DEFAULT_STREAM_MAX_LEN = 2_000;
/** Entries one XREAD returns at most. */
const READ_COUNT = 100;
/** Longest a consumer's XREAD blocks; shorter when the connection's command timeout is shorter. */
const MAX_BLOCK_MS = 1_000;
/** Backoff of a consumer whose reads fail (server away): from the first to the most. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/** `<namespace>.feed`, or `awaken.mailbox.feed` without one (three tokens: no namespace can produce it). */
export function feedSubject(namespace: string | null): string {
  return namespace === null ? 'awaken.mailbox.feed' : `${namespace}.feed`;
}

function noHistory(kind: string): StorageError {
  return StorageError.validation(`the ${kind} lifecycle feed keeps no history: start 'now'`);
}

// ---- in-process ----

const buses = new WeakMap<MailboxStore, EventEmitter>();

/** The bus of one memory store instance: its publishers and consumers share it. */
export class MemoryFeedTransport implements FeedTransport {
  readonly kind = 'memory';
  readonly #bus: EventEmitter;

  constructor(store: MailboxStore) {
    let bus = buses.get(store);
    if (bus === undefined) {
      bus = new EventEmitter();
      bus.setMaxListeners(0);
      buses.set(store, bus);
    }
    this.#bus = bus;
  }

  publish(node: string | null, events: readonly LifecycleEvent[]): Promise<void> {
    // No encoding in one process: the events themselves, with the publisher's node. Listeners run in a
    // later turn, never inside the publisher's (or the Mailbox's) call stack.
    const batch = events.map((e) => (e.node === node ? e : { ...e, node }));
    setImmediate(() => this.#bus.emit('batch', batch));
    return Promise.resolve();
  }

  async subscribe(start: FeedStart, sink: FeedSink): Promise<FeedSubscription> {
    if (start !== 'now') throw noHistory(this.kind);
    const listener = (batch: readonly LifecycleEvent[]): void => sink.events(batch);
    this.#bus.on('batch', listener);
    return {
      close: async () => {
        this.#bus.off('batch', listener);
      },
    };
  }
}

// ---- NATS ----

export class NatsFeedTransport implements FeedTransport {
  readonly kind = 'nats';
  readonly #nc: NatsConnection;
  readonly #subject: string;

  constructor(nc: NatsConnection, subject: string) {
    this.#nc = nc;
    this.#subject = subject;
  }

  async publish(node: string | null, events: readonly LifecycleEvent[]): Promise<void> {
    this.#nc.publish(this.#subject, encodeBatch(node, events));
  }

  async subscribe(start: FeedStart, sink: FeedSink): Promise<FeedSubscription> {
    if (start !== 'now') throw noHistory(this.kind);
    const sub: Subscription = this.#nc.subscribe(this.#subject, {
      callback: (err, msg) => {
        if (err) sink.error(err);
        else deliver(msg.string(), sink);
      },
    });
    // Once the server has the subscription, every later publish reaches it.
    await this.#nc.flush();
    return {
      close: async () => {
        sub.unsubscribe();
      },
    };
  }
}

// ---- Redis Stream ----

export class RedisStreamFeedTransport implements FeedTransport {
  readonly kind = 'redis-stream';
  readonly #redis: Redis;
  readonly #key: string;
  readonly #maxLen: string;

  constructor(redis: Redis, key: string, maxLen = DEFAULT_STREAM_MAX_LEN) {
    this.#redis = redis;
    this.#key = key;
    this.#maxLen = String(maxLen);
  }

  async publish(node: string | null, events: readonly LifecycleEvent[]): Promise<void> {
    await this.#redis.xadd(this.#key, 'MAXLEN', '~', this.#maxLen, '*', 'e', encodeBatch(node, events));
  }

  async subscribe(start: FeedStart, sink: FeedSink): Promise<FeedSubscription> {
    let last = '0-0';
    if (start === 'now') {
      const [newest] = await this.#redis.xrevrange(this.#key, '+', '-', 'COUNT', 1);
      if (newest) last = newest[0];
    }
    // XREAD BLOCK holds its connection: a dedicated one, closed with the subscription.
    const reader = this.#redis.duplicate();
    if (reader.status === 'wait') await reader.connect();
    const timeout = reader.options.commandTimeout;
    const block = timeout ? Math.max(10, Math.min(MAX_BLOCK_MS, Math.floor(timeout / 2))) : MAX_BLOCK_MS;
    let closed = false;
    const loop = (async () => {
      let retry = RETRY_MIN_MS;
      while (!closed) {
        try {
          const reply = await reader.xread('COUNT', READ_COUNT, 'BLOCK', block, 'STREAMS', this.#key, last);
          retry = RETRY_MIN_MS;
          for (const [, entries] of reply ?? []) {
            for (const [entryId, fields] of entries) {
              last = entryId;
              const at = fields.indexOf('e');
              if (at >= 0 && at + 1 < fields.length) deliver(fields[at + 1] as string, sink);
              else sink.malformed();
            }
          }
        } catch (err) {
          if (closed) return;
          sink.error(err);
          await new Promise((resolve) => setTimeout(resolve, retry).unref());
          retry = Math.min(retry * 2, RETRY_MAX_MS);
        }
      }
    })();
    return {
      close: async () => {
        closed = true;
        reader.disconnect();
        await loop;
      },
    };
  }
}

// ---- choosing one ----

/** What the feed needs of a Redis store (duck-typed, so the feed does not depend on its class). */
interface RedisStoreLike {
  readonly keys: RedisKeys;
  readonly namespace: string | null;
  readonly connections: { redis: Redis; nats: NatsConnection | null };
}

function isRedisStoreLike(store: MailboxStore): store is MailboxStore & RedisStoreLike {
  const s = store as Partial<RedisStoreLike>;
  return typeof s.keys?.lifecycleFeed === 'string' && typeof s.connections === 'object';
}

export interface TransportChoice {
  /** Cap of the Redis Stream (entries, approximate: XADD MAXLEN ~). */
  streamMaxLen?: number;
}

/** The transport `store` carries its feed on (see the module comment). */
export function feedTransportFor(store: MailboxStore, choice: TransportChoice = {}): FeedTransport {
  if (store instanceof MemoryMailboxStore) return new MemoryFeedTransport(store);
  if (isRedisStoreLike(store)) {
    const { redis, nats } = store.connections;
    if (nats !== null) return new NatsFeedTransport(nats, feedSubject(store.namespace));
    return new RedisStreamFeedTransport(redis, store.keys.lifecycleFeed, choice.streamMaxLen);
  }
  throw StorageError.validation(
    'this store has no built-in lifecycle feed transport: pass options.transport (a FeedTransport)',
  );
}

/**
 * Redis Streams signals of a partitioned namespace: one signal stream (and consumer group, delayed set) per
 * partition, each in its partition's slot, behind one transport. Every partition is its own
 * `redis-streams.ts` transport; this one fans pulls out over them.
 *
 * A Redis command may only name keys of one slot, so a single XREADGROUP cannot wait on every partition's
 * stream. A pull therefore:
 *   1. hands out signals already read (the buffer, below), if any;
 *   2. otherwise takes one non-blocking step on every partition in parallel (promote due delayed signals,
 *      reclaim a crashed puller's, read new ones): under load a pull is that one parallel round trip;
 *   3. when nothing was there, keeps one blocking reader per partition in flight (each blocks at most until
 *      the pull's `expires`) and returns as soon as any of them read something.
 * A reader that was still blocked when its pull returned stays in flight; what it reads later goes into the
 * buffer and is handed to the next pull. Up to `partitions × max` signals can so be read ahead; one that
 * waits in the buffer longer than `BUFFERED_SIGNAL_TTL_MS` (its puller stopped pulling) is nacked back into
 * its stream for any puller, so read-ahead never strands a wake-up.
 *
 * Publishes go to the stream of the signal's thread's partition. Receipts belong to their partition's
 * transport, so acks and nacks need no routing.
 */
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type { RedisClient } from '../redis/cluster.js';
import type { RedisKeys } from '../redis/keys.js';
import { appendTo, partitionOf } from '../redis/partitions.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { createRedisStreamsSignals, type RedisStreamsSignals } from './redis-streams.js';
import type { RawSignal, SignalRef, SignalTransport } from './transport.js';

/** A read-ahead signal nobody pulled for this long goes back to its stream. */
export const BUFFERED_SIGNAL_TTL_MS = 2000;

export interface PartitionedStreamsSignalsOptions {
  redis: RedisClient;
  /** The keys of every partition, in partition order. */
  partitionKeys: readonly RedisKeys[];
  consumerName: string;
  logger?: Logger;
  idleReclaimMs?: number;
}

/** One transport per partition (consumer groups created), fanned out behind one. */
export async function createPartitionedStreamsSignals(
  opts: PartitionedStreamsSignalsOptions,
): Promise<RedisStreamsSignals> {
  if (!opts || typeof opts !== 'object') throw StorageError.validation('options must be an object');
  if (!Array.isArray(opts.partitionKeys) || opts.partitionKeys.length === 0) {
    throw StorageError.validation('partitionKeys must list the keys of every partition');
  }
  const subs: RedisStreamsSignals[] = [];
  try {
    for (const keys of opts.partitionKeys) {
      subs.push(
        await createRedisStreamsSignals({
          redis: opts.redis,
          keys,
          consumerName: opts.consumerName,
          ...(opts.logger ? { logger: opts.logger } : {}),
          ...(opts.idleReclaimMs !== undefined ? { idleReclaimMs: opts.idleReclaimMs } : {}),
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled(subs.map((s) => s.close()));
    throw err;
  }
  return new PartitionedStreamsTransport(subs, opts.logger ?? silentLogger);
}

interface Buffered {
  signal: RawSignal;
  at: number;
}

class PartitionedStreamsTransport implements SignalTransport {
  readonly kind = 'redis-streams' as const;
  readonly #subs: readonly RedisStreamsSignals[];
  readonly #logger: Logger;
  readonly #buffer: Buffered[] = [];
  readonly #readers: (Promise<void> | null)[];
  readonly #wakers = new Set<() => void>();
  #failure: unknown = null;
  #expiry: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(subs: readonly RedisStreamsSignals[], logger: Logger) {
    this.#subs = subs;
    this.#logger = logger;
    this.#readers = subs.map(() => null);
  }

  async publish(signals: readonly SignalRef[]): Promise<void> {
    const groups = new Map<number, SignalRef[]>();
    for (const s of signals) {
      const p = partitionOf(s.thread_id, this.#subs.length);
      appendTo(groups, p, s);
    }
    await Promise.all([...groups].map(([p, group]) => this.#subs[p]?.publish(group)));
  }

  async pull(max: number, expiresMs: number): Promise<RawSignal[]> {
    const batch = args.bounded('max', max, args.MAX_BATCH);
    const expires = args.bounded('expires', expiresMs, args.MAX_PULL_EXPIRES_MS);
    if (this.#closed) throw StorageError.io('redis streams signal transport is closed');
    if (batch === 0) return [];
    const deadline = Date.now() + expires;
    if (this.#buffer.length === 0) await this.#stepAll(batch);
    while (this.#buffer.length === 0 && !this.#closed) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      this.#failure = null;
      this.#startReaders(batch, remaining);
      await this.#nextWake(remaining);
      if (this.#buffer.length === 0 && this.#failure !== null) {
        const failure = this.#failure;
        this.#failure = null;
        throw failure;
      }
    }
    return this.#take(batch);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#expiry);
    this.#expiry = undefined;
    // Read-ahead signals nobody will handle here go back to their streams at once.
    await Promise.allSettled(this.#buffer.splice(0).map((b) => b.signal.receipt.nack()));
    await Promise.allSettled(this.#subs.map((s) => s.close()));
    this.#wakeAll();
  }

  async destroy(): Promise<void> {
    await this.close();
    await Promise.all(this.#subs.map((s) => s.destroy()));
  }

  /** One non-blocking step on every partition at once; throws only when every partition failed. */
  async #stepAll(batch: number): Promise<void> {
    const results = await Promise.allSettled(this.#subs.map((s) => s.pull(batch, 0)));
    let failure: unknown = null;
    let ok = 0;
    for (const r of results) {
      if (r.status === 'fulfilled') {
        ok++;
        this.#push(r.value);
      } else {
        failure ??= r.reason;
      }
    }
    if (ok === 0 && failure !== null) throw failure;
    if (failure !== null && this.#buffer.length === 0) {
      this.#logger.debug?.('redis streams signals: a partition could not be read', {
        error: failure instanceof Error ? failure.message : String(failure),
      });
    }
  }

  #startReaders(batch: number, blockMs: number): void {
    this.#subs.forEach((sub, p) => {
      if (this.#readers[p] !== null) return;
      this.#readers[p] = sub
        .pull(batch, blockMs)
        .then(
          (signals) => this.#push(signals),
          (err: unknown) => {
            this.#failure ??= err;
          },
        )
        .finally(() => {
          this.#readers[p] = null;
          this.#wakeAll();
        });
    });
  }

  #push(signals: readonly RawSignal[]): void {
    if (signals.length === 0) return;
    if (this.#closed) {
      for (const signal of signals) void signal.receipt.nack().catch(() => undefined);
      return;
    }
    const at = Date.now();
    for (const signal of signals) this.#buffer.push({ signal, at });
    this.#expiry ??= setInterval(() => this.#expireBuffered(), BUFFERED_SIGNAL_TTL_MS / 2);
    this.#expiry.unref();
    this.#wakeAll();
  }

  #take(batch: number): RawSignal[] {
    const out = this.#buffer.splice(0, batch).map((b) => b.signal);
    if (this.#buffer.length === 0 && this.#expiry !== undefined) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
    return out;
  }

  #expireBuffered(): void {
    const cutoff = Date.now() - BUFFERED_SIGNAL_TTL_MS;
    let stale = 0;
    while (stale < this.#buffer.length && (this.#buffer[stale] as Buffered).at <= cutoff) stale++;
    for (const b of this.#buffer.splice(0, stale)) void b.signal.receipt.nack().catch(() => undefined);
    if (this.#buffer.length === 0) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
  }

  #nextWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(done);
    });
  }

  #wakeAll(): void {
    for (const wake of [...this.#wakers]) wake();
  }
}

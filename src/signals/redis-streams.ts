/**
 * Durable dispatch signals over a Redis Stream with one consumer group per namespace: a wake-up for a thread
 * with claimable work, so no node polls (the Redis-only alternative to the JetStream transport).
 *
 * Layout (keys from `src/redis/keys.ts`, all in the namespace's hash tag):
 *   signalStream   stream of outstanding signals, fields `t` (thread_id), `d` (dispatch_id) and, on a
 *                  redelivered signal, `a` (deliveries so far). The store's Lua scripts XADD `t`/`d` in the
 *                  same script as the state change (enqueue, requeue, due sweep); `publish` XADDs the same.
 *   signalGroup    consumer group, created at connect from id 0 (so signals written before any puller
 *                  existed are delivered) with MKSTREAM; BUSYGROUP is fine.
 *   signalDelayed  zset of signals nacked with a delay: score = due time (server clock, ms),
 *                  member = JSON {t, d, a, id}.
 *
 * Pull (one call, bounded): `lua/signals-promote.lua` moves due delayed signals back into the stream, at
 * most once a second per transport claims entries idle past `idleReclaimMs` (a crashed puller's) with
 * XAUTOCLAIM, and reads new entries without blocking — so under load a pull is one round trip. Only when
 * that found nothing does the pull block: XREADGROUP COUNT max BLOCK … `>` on a dedicated connection, with
 * BLOCK capped at the time until the earliest delayed signal, so a blocked puller wakes when one becomes
 * due, promotes it and reads again, until `expires`. Concurrent pulls of one transport each get their own
 * blocking connection (a small pool), since Redis serves one blocking command per connection at a time.
 *
 * Receipt: `redeliveryAttempts()` = `a` + the group's delivery count (1 on first delivery). ack = XACK +
 * XDEL (the stream never grows with acked entries), batched: acks issued in one turn of the event loop go
 * out as one script call. nack = XACK + XDEL + XADD with `a` (immediate redelivery); nackWithDelay = XACK +
 * XDEL + ZADD into the delayed set. Each is one Lua script, and a nack of a delivery that is no longer
 * pending (acked, or reclaimed and settled elsewhere) adds nothing, so signals never multiply.
 *
 * Close disconnects the blocking connections, so a blocked XREADGROUP ends at once; the shared `redis`
 * connection is the caller's and stays open.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCluster, type RedisClient } from '../redis/cluster.js';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type { DispatchSignalReceipt } from '../contract/types.js';
import { redisIoError } from '../redis/errors.js';
import type { RedisKeys } from '../redis/keys.js';
import { findLuaDir } from '../redis/scripts.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { RawSignal, SignalRef, SignalTransport } from './transport.js';

export const DEFAULT_IDLE_RECLAIM_MS = 30_000;
/** Blocking connections one transport opens at most (one per concurrent pull). */
export const MAX_BLOCKING_CONNECTIONS = 8;
/** Due delayed signals promoted per pull step. */
const PROMOTE_LIMIT = 256;
/** Reclaim (XAUTOCLAIM) at most this often per transport. */
const RECLAIM_INTERVAL_MS = 1000;
/** How long past `expires` a blocking read may take before its connection is dropped. */
const BLOCK_GRACE_MS = 5000;
const MAX_DELAY_MS = 365 * 24 * 3_600_000;
const MAX_CONSUMER_NAME = 256;
const WARN_INTERVAL_MS = 10_000;
/** Entry ids per ack script call. */
const ACK_BATCH = 1000;

export interface RedisStreamsSignalsOptions {
  /**
   * The store's connection (scripts, acks), a single-server client or a Cluster; never closed here. A
   * blocking duplicate is opened per pull (a Cluster duplicate on a Cluster).
   */
  redis: RedisClient;
  keys: RedisKeys;
  /** This process's name in the consumer group (e.g. the Mailbox consumer id). */
  consumerName: string;
  logger?: Logger;
  /** Entries pending longer than this (their puller crashed) are redelivered (default 30 000 ms). */
  idleReclaimMs?: number;
}

export type RedisStreamsSignals = SignalTransport & {
  /** Delete the stream (and its group) and the delayed set, then close. Refuses without a namespace. */
  destroy(): Promise<void>;
};

type SignalScript = 'signals-promote' | 'signals-ack' | 'signals-nack' | 'signals-nack-delay';
const SCRIPT_FILES: readonly SignalScript[] = [
  'signals-promote',
  'signals-ack',
  'signals-nack',
  'signals-nack-delay',
];

interface Script {
  readonly source: string;
  readonly sha: string;
}

let loaded: Record<SignalScript, Script> | null = null;

function loadSignalScripts(): Record<SignalScript, Script> {
  if (loaded) return loaded;
  const dir = findLuaDir();
  const out = {} as Record<SignalScript, Script>;
  for (const name of SCRIPT_FILES) {
    const source = readFileSync(join(dir, `${name}.lua`), 'utf8');
    out[name] = { source, sha: createHash('sha1').update(source).digest('hex') };
  }
  loaded = out;
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function hasPrefix(err: unknown, prefix: string): boolean {
  return err instanceof Error && err.message.startsWith(prefix);
}

/** Create the consumer group (and stream) and return the transport. */
export async function createRedisStreamsSignals(
  opts: RedisStreamsSignalsOptions,
): Promise<RedisStreamsSignals> {
  if (!opts || typeof opts !== 'object') throw StorageError.validation('options must be an object');
  const { redis, keys } = opts;
  if (!redis || typeof redis.duplicate !== 'function' || typeof redis.evalsha !== 'function') {
    throw StorageError.validation('redis must be an ioredis client');
  }
  if (!keys || typeof keys.signalStream !== 'string' || typeof keys.signalDelayed !== 'string') {
    throw StorageError.validation('keys must come from redisKeys(namespace)');
  }
  const consumer = opts.consumerName;
  if (typeof consumer !== 'string' || consumer.trim().length === 0 || consumer.length > MAX_CONSUMER_NAME) {
    throw StorageError.validation(
      `consumerName must be a non-blank string of at most ${MAX_CONSUMER_NAME} characters`,
    );
  }
  let idle = DEFAULT_IDLE_RECLAIM_MS;
  if (opts.idleReclaimMs !== undefined) {
    const v = opts.idleReclaimMs;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_DELAY_MS) {
      throw StorageError.validation('idleReclaimMs must be a positive integer number of milliseconds');
    }
    idle = v;
  }
  const transport = new RedisStreamsSignalTransport(redis, keys, consumer, idle, opts.logger ?? silentLogger);
  try {
    await transport.ensureGroup();
  } catch (err) {
    throw StorageError.io(`redis streams signals setup failed: ${errorText(err)}`);
  }
  return transport;
}

interface StreamEntry {
  id: string;
  fields: unknown;
  /** Deliveries of this entry by the group (1 for a fresh read). */
  deliveries: number;
}

class RedisStreamsSignalTransport implements SignalTransport {
  readonly kind = 'redis-streams' as const;
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #consumer: string;
  readonly #idleReclaimMs: number;
  readonly #logger: Logger;
  readonly #scripts = loadSignalScripts();
  readonly #idle: RedisClient[] = [];
  readonly #all = new Set<RedisClient>();
  readonly #waiters: ((conn: RedisClient | null) => void)[] = [];
  readonly #warnedAt = new Map<string, number>();
  readonly #acks: { id: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #reclaimCursor = '0-0';
  #lastReclaimAt = 0;
  #closed = false;

  constructor(redis: RedisClient, keys: RedisKeys, consumer: string, idleReclaimMs: number, logger: Logger) {
    this.#redis = redis;
    this.#keys = keys;
    this.#consumer = consumer;
    this.#idleReclaimMs = idleReclaimMs;
    this.#logger = logger;
  }

  async ensureGroup(): Promise<void> {
    try {
      await this.#redis.xgroup('CREATE', this.#keys.signalStream, this.#keys.signalGroup, '0', 'MKSTREAM');
    } catch (err) {
      if (!hasPrefix(err, 'BUSYGROUP')) throw err;
    }
  }

  async publish(signals: readonly SignalRef[]): Promise<void> {
    if (signals.length === 0) return;
    if (this.#closed) {
      this.#warn('closed', 'redis streams signals: publish after close ignored');
      return;
    }
    try {
      const pipeline = this.#redis.pipeline();
      for (const s of signals)
        pipeline.xadd(this.#keys.signalStream, '*', 't', s.thread_id, 'd', s.dispatch_id);
      const results = (await pipeline.exec()) ?? [];
      const failed = results.filter(([err]) => err !== null);
      if (failed.length > 0) throw failed[0]?.[0] ?? new Error('xadd failed');
    } catch (err) {
      this.#warn('publish', 'redis streams signals: publish failed; the sweeper will republish', {
        error: errorText(err),
      });
    }
  }

  async pull(max: number, expiresMs: number): Promise<RawSignal[]> {
    const batch = args.bounded('max', max, args.MAX_BATCH);
    const expires = args.bounded('expires', expiresMs, args.MAX_PULL_EXPIRES_MS);
    if (this.#closed) throw StorageError.io('redis streams signal transport is closed');
    if (batch === 0) return [];
    try {
      const entries = await this.#collect(batch, expires);
      return this.#toSignals(entries);
    } catch (err) {
      if (this.#closed) return [];
      if (err instanceof StorageError) throw err;
      // A Redis that is down reads "Redis at <host:port> is unreachable: …", not the client's wording.
      const why = isCluster(this.#redis) ? errorText(err) : redisIoError(this.#redis, err, []).detail;
      throw StorageError.io(`redis streams signal pull failed: ${why}`);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of this.#all) conn.disconnect();
    this.#all.clear();
    this.#idle.length = 0;
    for (const wake of this.#waiters.splice(0)) wake(null);
  }

  async destroy(): Promise<void> {
    if (this.#keys.namespace === null) {
      throw StorageError.validation(
        'destroy() refuses to delete the default namespace signals: no namespace',
      );
    }
    await this.close();
    try {
      await this.#redis.del(this.#keys.signalStream, this.#keys.signalDelayed);
    } catch (err) {
      throw StorageError.io(`deleting redis streams signals failed: ${errorText(err)}`);
    }
  }

  /**
   * One scripted step (promote, maybe reclaim, non-blocking read); if it found nothing, block for fresh
   * entries until one arrives, a delayed signal falls due (then step again), or `expires` passes.
   */
  async #collect(max: number, expiresMs: number): Promise<StreamEntry[]> {
    const deadline = Date.now() + expiresMs;
    let groupChecked = false;
    while (true) {
      const reclaim = Date.now() - this.#lastReclaimAt >= RECLAIM_INTERVAL_MS;
      if (reclaim) this.#lastReclaimAt = Date.now();
      const step = await this.#step(reclaim ? max : 0, max);
      if (step.entries.length > 0 || this.#closed) return step.entries;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      const block = step.waitMs >= 0 ? Math.min(remaining, Math.max(1, step.waitMs)) : remaining;
      let fresh: StreamEntry[];
      try {
        fresh = await this.#read(max, block);
      } catch (err) {
        // The group vanished (destroyNamespace elsewhere, a Redis that lost its data): recreate it once.
        if (!hasPrefix(err, 'NOGROUP') || groupChecked) throw err;
        groupChecked = true;
        await this.ensureGroup();
        continue;
      }
      if (fresh.length > 0 || Date.now() >= deadline || this.#closed) return fresh;
    }
  }

  async #step(reclaimCount: number, readCount: number): Promise<{ waitMs: number; entries: StreamEntry[] }> {
    const reply = await this.#eval(
      'signals-promote',
      [this.#keys.signalStream, this.#keys.signalDelayed],
      [
        String(PROMOTE_LIMIT),
        this.#keys.signalGroup,
        this.#consumer,
        String(this.#idleReclaimMs),
        this.#reclaimCursor,
        String(reclaimCount),
        String(readCount),
      ],
    );
    if (!Array.isArray(reply) || reply.length < 3) {
      throw StorageError.serialization('signals-promote: unexpected reply shape');
    }
    const waitMs = Number(reply[1]);
    const cursor = reply[2];
    if (reclaimCount > 0 && typeof cursor === 'string') this.#reclaimCursor = cursor;
    const entries: StreamEntry[] = [];
    for (let i = 3; i + 2 < reply.length; i += 3) {
      const id = reply[i];
      const deliveries = Number(reply[i + 2]);
      if (typeof id !== 'string') throw StorageError.serialization('signals-promote: bad entry id');
      entries.push({
        id,
        fields: reply[i + 1],
        deliveries: Number.isSafeInteger(deliveries) ? deliveries : 1,
      });
    }
    return { waitMs: Number.isFinite(waitMs) ? waitMs : -1, entries };
  }

  /** XREADGROUP on a pooled dedicated connection; `block` null = do not block. */
  async #read(count: number, block: number | null): Promise<StreamEntry[]> {
    const conn = await this.#acquire();
    if (conn === null) return [];
    let healthy = true;
    let guard: ReturnType<typeof setTimeout> | undefined;
    try {
      const { signalGroup, signalStream } = this.#keys;
      const command =
        block === null
          ? conn.xreadgroup(
              'GROUP',
              signalGroup,
              this.#consumer,
              'COUNT',
              count,
              'STREAMS',
              signalStream,
              '>',
            )
          : conn.xreadgroup(
              'GROUP',
              signalGroup,
              this.#consumer,
              'COUNT',
              count,
              'BLOCK',
              block,
              'STREAMS',
              signalStream,
              '>',
            );
      // A read that outlives its BLOCK by far means a dead socket: drop the connection to end it.
      guard = setTimeout(
        () => {
          healthy = false;
          conn.disconnect();
        },
        (block ?? 0) + BLOCK_GRACE_MS,
      );
      guard.unref();
      const reply: unknown = await command;
      return parseReadReply(reply);
    } catch (err) {
      if (!hasPrefix(err, 'NOGROUP')) healthy = false;
      throw err;
    } finally {
      clearTimeout(guard);
      this.#release(conn, healthy);
    }
  }

  async #acquire(): Promise<RedisClient | null> {
    if (this.#closed) return null;
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#all.size < MAX_BLOCKING_CONNECTIONS) {
      // Blocking reads must not hit a client-side command timeout, and must fail fast when disconnected.
      const connectionName = `awaken-signals:${this.#consumer}`.slice(0, 200).replace(/\s/g, '_');
      const conn: RedisClient = isCluster(this.#redis)
        ? this.#redis.duplicate(undefined, {
            ...this.#redis.options,
            enableOfflineQueue: true,
            redisOptions: {
              ...this.#redis.options.redisOptions,
              commandTimeout: undefined,
              blockingTimeout: undefined,
              connectionName,
            },
          })
        : this.#redis.duplicate({
            commandTimeout: undefined,
            blockingTimeout: undefined,
            enableOfflineQueue: true,
            lazyConnect: false,
            connectionName,
          });
      conn.on('error', (err: unknown) => {
        this.#warn('blocking-conn', 'redis streams signals: blocking connection error', {
          error: errorText(err),
        });
      });
      this.#all.add(conn);
      return conn;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(conn: RedisClient, healthy: boolean): void {
    if (this.#closed || !healthy) {
      this.#all.delete(conn);
      conn.disconnect();
      // A slot freed up: let a waiter open a fresh connection.
      const wake = this.#waiters.shift();
      if (wake) void this.#acquire().then(wake);
      return;
    }
    const wake = this.#waiters.shift();
    if (wake) wake(conn);
    else this.#idle.push(conn);
  }

  #toSignals(entries: readonly StreamEntry[]): RawSignal[] {
    const out: RawSignal[] = [];
    for (const entry of entries) {
      const f = fieldMap(entry.fields);
      const prior = f.a === undefined ? 0 : Number(f.a);
      const attempts = (Number.isSafeInteger(prior) && prior >= 0 ? prior : 0) + entry.deliveries;
      const receipt = new RedisStreamsReceipt(this, entry.id, attempts);
      if (typeof f.t !== 'string' || typeof f.d !== 'string' || f.d.trim().length === 0) {
        this.#warn('corrupt', 'redis streams signals: corrupt signal entry skipped', { id: entry.id });
        void receipt.ack().catch(() => undefined);
        continue;
      }
      out.push({ thread_id: f.t, dispatch_id: f.d, receipt });
    }
    return out;
  }

  /** Receipt plumbing (one script per settlement). */
  async settle(kind: 'ack' | 'nack' | 'delay', id: string, attempts: number, delayMs = 0): Promise<void> {
    const { signalStream, signalDelayed, signalGroup } = this.#keys;
    try {
      if (kind === 'ack') {
        await this.#queueAck(id);
      } else if (kind === 'nack') {
        await this.#eval('signals-nack', [signalStream], [signalGroup, id, String(attempts)]);
      } else {
        await this.#eval(
          'signals-nack-delay',
          [signalStream, signalDelayed],
          [signalGroup, id, String(attempts), String(delayMs)],
        );
      }
    } catch (err) {
      throw StorageError.io(`redis streams signal ${kind} failed: ${errorText(err)}`);
    }
  }

  /**
   * Acks issued in the same turn of the event loop (a handled batch) go out as one script call: one round
   * trip per batch instead of per signal.
   */
  #queueAck(id: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#acks.push({ id, resolve, reject });
      if (this.#acks.length === 1) setImmediate(() => void this.#flushAcks());
    });
  }

  async #flushAcks(): Promise<void> {
    while (this.#acks.length > 0) {
      const batch = this.#acks.splice(0, ACK_BATCH);
      const { signalStream, signalGroup } = this.#keys;
      try {
        await this.#eval('signals-ack', [signalStream], [signalGroup, ...batch.map((a) => a.id)]);
        for (const a of batch) a.resolve();
      } catch (err) {
        for (const a of batch) a.reject(err);
      }
    }
  }

  async #eval(name: SignalScript, keys: readonly string[], argv: readonly string[]): Promise<unknown> {
    const script = this.#scripts[name];
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...argv);
    } catch (err) {
      if (!hasPrefix(err, 'NOSCRIPT')) throw err;
      return await this.#redis.eval(script.source, keys.length, ...keys, ...argv);
    }
  }

  #warn(kind: string, msg: string, fields?: Record<string, unknown>): void {
    const now = Date.now();
    if (now - (this.#warnedAt.get(kind) ?? 0) < WARN_INTERVAL_MS) return;
    this.#warnedAt.set(kind, now);
    this.#logger.warn?.(msg, { stream: this.#keys.signalStream, ...fields });
  }
}

/** `[[stream, [[id, [f, v, …]], …]]]` or null → entries (fresh reads: 1 delivery). */
function parseReadReply(reply: unknown): StreamEntry[] {
  if (reply === null || reply === undefined) return [];
  if (!Array.isArray(reply)) throw StorageError.serialization('XREADGROUP: unexpected reply shape');
  const out: StreamEntry[] = [];
  for (const stream of reply as unknown[]) {
    const entries = Array.isArray(stream) ? (stream as unknown[])[1] : undefined;
    if (!Array.isArray(entries)) throw StorageError.serialization('XREADGROUP: unexpected stream shape');
    for (const entry of entries as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') {
        throw StorageError.serialization('XREADGROUP: unexpected entry shape');
      }
      out.push({ id: entry[0], fields: entry[1], deliveries: 1 });
    }
  }
  return out;
}

function fieldMap(fields: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(fields)) return out;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k: unknown = fields[i];
    const v: unknown = fields[i + 1];
    if (typeof k === 'string' && typeof v === 'string') out[k] = v;
  }
  return out;
}

/** Settles once: the first of ack / nack / nackWithDelay wins, later calls are no-ops. */
class RedisStreamsReceipt implements DispatchSignalReceipt {
  readonly #transport: RedisStreamsSignalTransport;
  readonly #id: string;
  readonly #attempts: number;
  #settled = false;

  constructor(transport: RedisStreamsSignalTransport, id: string, attempts: number) {
    this.#transport = transport;
    this.#id = id;
    this.#attempts = attempts;
  }

  redeliveryAttempts(): number | null {
    return this.#attempts;
  }

  async ack(): Promise<void> {
    await this.#settle('ack');
  }

  async nack(): Promise<void> {
    await this.#settle('nack');
  }

  async nackWithDelay(delayMs: number): Promise<void> {
    const ms = Math.min(args.u64('delay_ms', delayMs), MAX_DELAY_MS);
    await this.#settle(ms === 0 ? 'nack' : 'delay', ms);
  }

  async #settle(kind: 'ack' | 'nack' | 'delay', delayMs = 0): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    try {
      await this.#transport.settle(kind, this.#id, this.#attempts, delayMs);
    } catch (err) {
      // Nothing changed on the server: allow a retry.
      this.#settled = false;
      throw err;
    }
  }
}

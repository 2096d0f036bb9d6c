/**
 * `awaken-mailbox inspect`: read-only views of a Redis store, printed as JSON — a thread's dispatches (what the
 * Awaken server's "peek mailbox" shows), one dispatch, the dispatches in some statuses across every thread, or
 * the counts by status and the threads with queued work. Every read is bounded: pages of at most
 * `INSPECT_MAX_LIMIT` records, indexes read in batches of `SCAN_BATCH`, never `KEYS`.
 */
import type { Redis } from 'ioredis';
import { runDispatchToWire } from '../contract/codec.js';
import { StorageError } from '../contract/errors.js';
import type { RunDispatch, RunDispatchStatus } from '../contract/types.js';
import { RUN_DISPATCH_STATUSES, isTerminal } from '../contract/types.js';
import { closeRedis, collectSecrets, openOwnedRedis } from '../redis/connections.js';
import { createMailboxStore } from '../redis/create-store.js';
import type { RedisKeys } from '../redis/keys.js';
import { PartitionedRedisMailboxStore } from '../redis/partitioned-store.js';
import { resolveOptions } from '../redis/options.js';
import type { RedisMailboxStore } from '../redis/store.js';

export interface InspectOptions {
  redis: string;
  namespace: string | null;
  thread: string | null;
  dispatch: string | null;
  status: RunDispatchStatus[] | null;
  limit: number;
  offset: number;
  /** Partitions of the namespace (as created with `partitions: N`); 1 = the single-partition layout. */
  partitions?: number;
}

export const INSPECT_MAX_LIMIT = 200;
export const INSPECT_DEFAULT_LIMIT = 50;
/** Records read per round trip when scanning an index across threads. */
const SCAN_BATCH = 500;
/**
 * Most records one cross-thread listing reads before it stops (say, looking for a few DeadLetter records among
 * millions of Acked ones): the answer then says `truncated` and how far it got.
 */
export const INSPECT_MAX_SCAN = 200_000;
/** Largest `--offset` (the stores' own bound). */
const MAX_OFFSET = 10_000_000;

/** `Queued,Claimed` → the statuses, validated. */
export function parseStatusList(text: string): RunDispatchStatus[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) {
    throw StorageError.validation(`--status needs one or more of ${RUN_DISPATCH_STATUSES.join(', ')}`);
  }
  for (const p of parts) {
    if (!(RUN_DISPATCH_STATUSES as readonly string[]).includes(p)) {
      throw StorageError.validation(`--status '${p}' is not one of ${RUN_DISPATCH_STATUSES.join(', ')}`);
    }
  }
  return [...new Set(parts)] as RunDispatchStatus[];
}

/** `--limit`: a page size in 1..=200 (0 or more than 200 is a usage error, never silently adjusted). */
export function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > INSPECT_MAX_LIMIT) {
    throw StorageError.validation(`--limit must be an integer in 1..${INSPECT_MAX_LIMIT}, got '${text}'`);
  }
  return n;
}

/** `--partitions`: 1..=256, as `createMailboxStore`'s `partitions`. */
export function parsePartitions(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > 256) {
    throw StorageError.validation(`--partitions must be an integer in 1..256, got '${text}'`);
  }
  return n;
}

/** `--offset`: records to skip, 0..=10 000 000. */
export function parseOffset(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n > MAX_OFFSET) {
    throw StorageError.validation(`--offset must be an integer in 0..${MAX_OFFSET}, got '${text}'`);
  }
  return n;
}

interface Opened {
  store: RedisMailboxStore;
  /** The connection the store runs on, also used to read the store's indexes in batches. */
  redis: Redis;
}

async function withStore<T>(opts: InspectOptions, fn: (opened: Opened) => Promise<T>): Promise<T> {
  // Without `--namespace` the upstream-compatible default keys (`awaken:{@default}:`) are read.
  const namespace = opts.namespace ?? undefined;
  const resolved = resolveOptions({ redis: opts.redis, signals: 'none', namespace });
  const secrets = collectSecrets(resolved);
  const redis = await openOwnedRedis(opts.redis, resolved, secrets, 'inspect');
  try {
    const store = await createMailboxStore({
      redis,
      signals: 'none',
      namespace,
      partitions: opts.partitions ?? 1,
    });
    try {
      return await fn({ store, redis });
    } finally {
      await store.close();
    }
  } finally {
    await closeRedis(redis, resolved.commandTimeoutMs);
  }
}

export async function runInspect(opts: InspectOptions): Promise<Record<string, unknown>> {
  if (opts.dispatch !== null && (opts.thread !== null || opts.status !== null)) {
    throw StorageError.validation('--dispatch shows one dispatch: give it without --thread and --status');
  }
  return withStore(opts, async ({ store, redis }) => {
    if (opts.dispatch !== null) {
      const record = await store.loadDispatch(opts.dispatch);
      return { dispatch: record ? runDispatchToWire(record) : null };
    }
    if (opts.thread !== null) return threadPage(store, opts.thread, opts);
    if (opts.status !== null) return statusPage(store, redis, opts.status, opts);
    const values = await Promise.all(RUN_DISPATCH_STATUSES.map((s) => store.countDispatchesByStatus(s)));
    const counts = Object.fromEntries(RUN_DISPATCH_STATUSES.map((s, i) => [s, values[i] ?? 0]));
    const queuedThreads = await store.queuedThreadIds();
    return {
      namespace: opts.namespace,
      counts,
      queued_threads: queuedThreads.length,
      queued_thread_ids: queuedThreads.slice(0, INSPECT_MAX_LIMIT),
    };
  });
}

async function threadPage(
  store: RedisMailboxStore,
  thread: string,
  opts: InspectOptions,
): Promise<Record<string, unknown>> {
  // One record more than the page tells whether another page follows.
  const [fetched, epoch] = await Promise.all([
    store.listDispatches(thread, opts.status, opts.limit + 1, opts.offset),
    store.currentDispatchEpoch(thread),
  ]);
  const items = fetched.slice(0, opts.limit);
  const counts: Partial<Record<RunDispatchStatus, number>> = {};
  for (const d of items) counts[d.status] = (counts[d.status] ?? 0) + 1;
  return {
    thread_id: thread,
    current_dispatch_epoch: epoch,
    status: opts.status,
    limit: opts.limit,
    offset: opts.offset,
    next_offset: fetched.length > opts.limit ? opts.offset + opts.limit : null,
    counts_in_page: counts,
    items: items.map(runDispatchToWire),
  };
}

/**
 * The dispatches in `statuses` across every thread: Queued ones thread by thread (threads in id order, each
 * in claim order), Claimed ones by lease expiry (the lease index), terminal ones by completion (the terminal
 * index, oldest first). `offset` and `limit` count matching records. Indexes are read in batches, not in one
 * snapshot: a record that changes status while the listing runs may be missed or shown twice.
 */
async function statusPage(
  store: RedisMailboxStore,
  redis: Redis,
  statuses: readonly RunDispatchStatus[],
  opts: InspectOptions,
): Promise<Record<string, unknown>> {
  const scan = { read: 0, truncated: false };
  const items: RunDispatch[] = [];
  let skipped = 0;
  let more = false;
  for await (const d of matching(store, redis, statuses, scan)) {
    if (skipped < opts.offset) {
      skipped++;
    } else if (items.length < opts.limit) {
      items.push(d);
    } else {
      more = true;
      break;
    }
  }
  return {
    namespace: opts.namespace,
    status: statuses,
    limit: opts.limit,
    offset: opts.offset,
    next_offset: more ? opts.offset + opts.limit : null,
    ...(scan.truncated
      ? {
          truncated: `stopped after reading ${scan.read} records; narrow the query with --thread, or page with --offset`,
        }
      : {}),
    items: items.map(runDispatchToWire),
  };
}

async function* matching(
  store: RedisMailboxStore,
  redis: Redis,
  statuses: readonly RunDispatchStatus[],
  scan: { read: number; truncated: boolean },
): AsyncGenerator<RunDispatch> {
  const wanted = new Set(statuses);
  const sources: AsyncGenerator<RunDispatch[]>[] = [];
  if (wanted.has('Queued')) sources.push(queuedBatches(store, redis));
  if (wanted.has('Claimed')) sources.push(claimedBatches(store, redis));
  if (statuses.some(isTerminal)) sources.push(terminalBatches(store));
  for (const source of sources) {
    for await (const batch of source) {
      scan.read += batch.length;
      for (const d of batch) if (wanted.has(d.status)) yield d;
      if (scan.read >= INSPECT_MAX_SCAN) {
        scan.truncated = true;
        return;
      }
    }
  }
}

/** `ZRANGE key start stop` by rank, `SCAN_BATCH` members at a time. */
async function* rankBatches(redis: Redis, key: string): AsyncGenerator<string[]> {
  for (let start = 0; ; start += SCAN_BATCH) {
    const members = await redis.zrange(key, String(start), String(start + SCAN_BATCH - 1));
    yield members;
    if (members.length < SCAN_BATCH) break;
  }
}

/** Each partition's keys (one entry for a namespace with one partition). */
function keySets(store: RedisMailboxStore): readonly RedisKeys[] {
  return store instanceof PartitionedRedisMailboxStore ? store.partitionKeys : [store.keys];
}

async function* queuedBatches(store: RedisMailboxStore, redis: Redis): AsyncGenerator<RunDispatch[]> {
  for (const keys of keySets(store)) yield* queuedBatchesOf(store, redis, keys);
}

async function* queuedBatchesOf(
  store: RedisMailboxStore,
  redis: Redis,
  keys: RedisKeys,
): AsyncGenerator<RunDispatch[]> {
  // The queued-threads index has every score 0, so rank order is thread id (byte) order.
  for await (const threads of rankBatches(redis, keys.queuedThreads)) {
    for (const thread of threads) {
      for (let offset = 0; ; offset += SCAN_BATCH) {
        const batch = await store.listDispatches(thread, ['Queued'], SCAN_BATCH, offset);
        yield batch;
        if (batch.length < SCAN_BATCH) break;
      }
    }
  }
}

async function* claimedBatches(store: RedisMailboxStore, redis: Redis): AsyncGenerator<RunDispatch[]> {
  // The lease index holds Claimed dispatch ids by lease expiry; a record that settled since is filtered out
  // by status in `matching`.
  for (const keys of keySets(store)) {
    for await (const ids of rankBatches(redis, keys.leases)) {
      const records = await store.loadDispatches(ids);
      yield records.filter((d): d is RunDispatch => d !== null);
    }
  }
}

async function* terminalBatches(store: RedisMailboxStore): AsyncGenerator<RunDispatch[]> {
  for (let offset = 0; ; offset += SCAN_BATCH) {
    const batch = await store.listTerminalDispatches(SCAN_BATCH, offset);
    yield batch;
    if (batch.length < SCAN_BATCH) break;
  }
}

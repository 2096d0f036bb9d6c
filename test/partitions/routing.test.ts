/**
 * Partitioned namespaces on one Redis server: the stable thread → partition hash, the key layout (one hash
 * tag per partition, byte-identical keys with one partition), the dispatch directory (cross-partition
 * uniqueness, lookups from a process that never saw the dispatch, cleanup on purge and on failed enqueues,
 * the probe when an entry is missing), and the fan-out reads (exact limits and offsets, contract order)
 * compared with the memory store.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore, redisKeys } from '../../src/redis/index.js';
import { keySlot } from '../../src/redis/cluster.js';
import { partitionKeys } from '../../src/redis/keys.js';
import { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { fnv1a32, partitionOf } from '../../src/redis/partitions.js';
import { RedisMailboxStore } from '../../src/redis/store.js';
import { redisUrl, testNamespace } from '../support/servers.js';

const N = 4;
/** The tags of namespace `ns` with 8 partitions: part of the data layout, so they must never change. */
const PINNED_NS_8 = [
  '{ns:p0.1}',
  '{ns:p1.13}',
  '{ns:p2}',
  '{ns:p3.9}',
  '{ns:p4.159}',
  '{ns:p5.59}',
  '{ns:p6.60}',
  '{ns:p7.12}',
];

function dispatch(id: string, thread: string, at = 1000, extra: Partial<RunDispatch> = {}): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: at,
    ...extra,
  });
}

/** Thread ids in distinct partitions, found by trying names. */
function threadsInDistinctPartitions(count: number, n = N): string[] {
  const found = new Map<number, string>();
  for (let i = 0; found.size < count; i++) {
    const t = `thread-${i}`;
    const p = partitionOf(t, n);
    if (!found.has(p)) found.set(p, t);
  }
  return [...found.values()];
}

async function scanAll(raw: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', '1000');
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

describe('partition hash', () => {
  it('is 32-bit FNV-1a over UTF-8 (reference vectors) and never changes', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    // Pinned: changing these moves every existing thread to another partition.
    expect(partitionOf('thread-1', 8)).toBe(fnv1a32('thread-1') % 8);
    expect([0, 1, 2, 3].map((i) => partitionOf(`t${i}`, 8))).toEqual(
      [0, 1, 2, 3].map((i) => fnv1a32(`t${i}`) % 8),
    );
  });

  it('hashes the UTF-8 bytes (astral characters, lone surrogates as U+FFFD)', () => {
    const reference = (s: string): number => {
      let h = 0x811c9dc5;
      for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
      return h >>> 0;
    };
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(fnv1a32(s)).toBe(reference(s));
      }),
      { numRuns: 500 },
    );
    for (const s of ['线程', '🧵x', 'a\uD800b', '\uDC00']) expect(fnv1a32(s)).toBe(reference(s));
  });

  it('spreads threads evenly enough', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[partitionOf(`thread-${i}`, 8)]! += 1;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });
});

describe('partition keys', () => {
  it('one partition is today’s layout byte for byte', () => {
    for (const ns of [null, 'tenant_A-1']) {
      const a = redisKeys(ns);
      const b = partitionKeys(ns, 0, 1);
      expect(b.prefix).toBe(a.prefix);
      expect(b.scriptGlobals).toEqual(a.scriptGlobals);
      expect(b.record('d')).toBe(a.record('d'));
      expect(b.pattern).toBe(a.pattern);
    }
  });

  it('partition k of N > 1 has its own tag {<ns>:p<k>[.<j>]} in the middle of the k-th Nth of the slots', () => {
    const k = partitionKeys('ns', 3, 8);
    expect(k.hashTag).toMatch(/^\{ns:p3(\.\d+)?\}$/);
    expect(k.prefix).toBe(`awaken:${k.hashTag}:`);
    expect(k.record('d1')).toBe(`awaken:${k.hashTag}:d:d1`);
    expect(k.dispatchDirectory).toBe(`awaken:${k.hashTag}:dir`);
    expect(partitionKeys(null, 0, 2).hashTag).toMatch(/^\{@default:p0(\.\d+)?\}$/);
    for (const n of [2, 3, 8, 30, 256]) {
      for (let p = 0; p < n; p++) {
        const slot = keySlot(partitionKeys('tenant-1', p, n).prefix);
        const segment = 16384 / n;
        expect(Math.abs(slot + 0.5 - (p + 0.5) * segment)).toBeLessThanOrEqual(segment / 8 + 1);
      }
    }
    // 8 partitions over 3 masters with equal slot ranges: 3/2/3 for any namespace.
    for (let i = 0; i < 50; i++) {
      const perMaster = [0, 0, 0];
      for (let p = 0; p < 8; p++) {
        const slot = keySlot(partitionKeys(`tenant-${i}`, p, 8).prefix);
        perMaster[slot < 5461 ? 0 : slot < 10923 ? 1 : 2]! += 1;
      }
      expect(perMaster).toEqual([3, 2, 3]);
    }
    // Pinned: the tags (so every key) of a namespace never change.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((p) => partitionKeys('ns', p, 8).hashTag)).toEqual(PINNED_NS_8);
    expect(() => partitionKeys('ns', 8, 8)).toThrow(StorageError);
    expect(() => partitionKeys('ns', 0, 0)).toThrow(StorageError);
  });
});

describe('partitioned store on one server', () => {
  let url: string;
  let raw: Redis;
  let store: PartitionedRedisMailboxStore;
  let other: PartitionedRedisMailboxStore;
  let namespace: string;

  beforeAll(async () => {
    url = await redisUrl();
    raw = new Redis(url);
    namespace = testNamespace('part-route');
    const open = async (): Promise<PartitionedRedisMailboxStore> =>
      (await createMailboxStore({
        redis: url,
        namespace,
        signals: 'none',
        partitions: N,
      })) as PartitionedRedisMailboxStore;
    store = await open();
    // A second process: its route cache has never seen anything.
    other = await open();
  });

  afterAll(async () => {
    await store.destroyNamespace();
    await store.close();
    await other.close();
    raw.disconnect();
  });

  it('is a RedisMailboxStore that overrides every store method of its base', () => {
    expect(store).toBeInstanceOf(RedisMailboxStore);
    // Base methods that never touch keys (live, signals flag, sweeper, lifecycle, getters) may stay.
    // pullDispatchSignals reads records only through loadSignalRecords, which must be overridden (below).
    const inherited = new Set([
      'constructor',
      'pullDispatchSignals',
      'supportsDispatchSignals',
      'deliverLive',
      'deliverLiveTo',
      'openLiveChannel',
      'openLiveChannelFor',
      'openThreadRuns',
      'connections',
      'keys',
      'namespace',
      'signalsMode',
    ]);
    const own = new Set(Object.getOwnPropertyNames(PartitionedRedisMailboxStore.prototype));
    const missing = Object.getOwnPropertyNames(RedisMailboxStore.prototype).filter(
      (name) => !inherited.has(name) && !own.has(name),
    );
    expect(missing, 'methods a partitioned store would run on the wrong keys').toEqual([]);
  });

  it('writes each thread’s keys under its partition’s tag, and nothing under the namespace’s own tag', async () => {
    const threads = threadsInDistinctPartitions(N);
    for (const [i, t] of threads.entries()) {
      await store.enqueue(dispatch(`layout-${i}`, t, 1000 + i, { dedupe_key: `k${i}` }));
    }
    const claimed = await store.claim(threads[0]!, 'c1', 30_000, 2000, 1);
    await store.ack(claimed[0]!.dispatch_id, claimed[0]!.claim_token!, 2100);
    const keys = await scanAll(raw, `awaken:{${namespace}*`);
    expect(keys.filter((k) => k.startsWith(`awaken:{${namespace}}:`))).toEqual([]);
    for (const key of keys) {
      const tag = /^awaken:\{[^}]+:p(\d+)(?:\.\d+)?\}:(.*)$/.exec(key);
      expect(tag, key).not.toBeNull();
      const p = Number(tag![1]);
      const rest = tag![2]!;
      const thread = /^(?:th|tq|tw|dd|sq):(.*)$/.exec(rest)?.[1] ?? /^ts:[A-Za-z]+:(.*)$/.exec(rest)?.[1];
      if (thread !== undefined) expect(partitionOf(thread, N), key).toBe(p);
      const record = /^d:(.*)$/.exec(rest)?.[1];
      if (record !== undefined) {
        const t = await raw.hget(key, 'thread_id');
        expect(partitionOf(t!, N), key).toBe(p);
      }
    }
    await store.destroyNamespace();
  });

  it('keeps dispatch ids unique across partitions, also for a process that never saw the id', async () => {
    const [a, b] = threadsInDistinctPartitions(2);
    await store.enqueue(dispatch('uniq', a!));
    const err = await other.enqueue(dispatch('uniq', b!)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('AlreadyExists');
    expect((err as StorageError).detail).toBe('uniq');
    expect(await other.listDispatches(b!, null, 10, 0)).toEqual([]);
    // The other process finds it by id through the directory and can act on it.
    expect((await other.loadDispatch('uniq'))?.thread_id).toBe(a);
    const cancelled = await other.cancel('uniq', 1500);
    expect(cancelled?.status).toBe('Cancelled');
    await store.destroyNamespace();
  });

  it('a dedupe collision is reported before a duplicate id on another partition, as on one partition', async () => {
    const [a, b] = threadsInDistinctPartitions(2);
    await store.enqueue(dispatch('dup-id', a!));
    await store.enqueue(dispatch('holder', b!, 1000, { dedupe_key: 'k1' }));
    const err = await other
      .enqueue(dispatch('dup-id', b!, 1000, { dedupe_key: 'k1' }))
      .catch((e: unknown) => e);
    expect((err as StorageError).kind).toBe('AlreadyExists');
    expect((err as StorageError).detail).toBe('dedupe_key=k1');
    // Once the holder is terminal, the duplicate id is what is refused.
    await store.cancel('holder', 1100);
    const again = await other
      .enqueue(dispatch('dup-id', b!, 1000, { dedupe_key: 'k1' }))
      .catch((e: unknown) => e);
    expect((again as StorageError).detail).toBe('dup-id');
    await store.destroyNamespace();
  });

  it('purging a record removes its directory entry; the id can then live on another partition', async () => {
    const [a, b] = threadsInDistinctPartitions(2);
    await store.enqueue(dispatch('reuse', a!));
    await store.cancel('reuse', 1100);
    const shard = partitionOf('reuse', N);
    const directory = partitionKeys(namespace, shard, N).dispatchDirectory;
    expect(await raw.hget(directory, 'reuse')).toBe(String(partitionOf(a!, N)));
    expect(await store.purgeTerminal(5000)).toBe(1);
    expect(await raw.hget(directory, 'reuse')).toBeNull();
    // `store` still caches the old partition: the directory corrects it.
    await other.enqueue(dispatch('reuse', b!, 6000));
    expect((await store.loadDispatch('reuse'))?.thread_id).toBe(b);
    expect((await store.cancel('reuse', 6100))?.thread_id).toBe(b);
    await store.destroyNamespace();
  });

  it('a failed enqueue leaves no directory entry; a missing entry is found by probing', async () => {
    const [a] = threadsInDistinctPartitions(1);
    await store.enqueue(dispatch('holder', a!, 1000, { dedupe_key: 'same' }));
    const err = await store
      .enqueue(dispatch('loser', a!, 1001, { dedupe_key: 'same' }))
      .catch((e: unknown) => e);
    expect((err as StorageError).detail).toBe('dedupe_key=same');
    const loserShard = partitionKeys(namespace, partitionOf('loser', N), N).dispatchDirectory;
    expect(await raw.hexists(loserShard, 'loser')).toBe(0);
    // Lose the holder's directory entry (as a purge racing a re-enqueue could): lookups still find it.
    const holderShard = partitionKeys(namespace, partitionOf('holder', N), N).dispatchDirectory;
    await raw.hdel(holderShard, 'holder');
    expect((await other.loadDispatch('holder'))?.dispatch_id).toBe('holder');
    expect(await other.loadDispatch('nobody')).toBeNull();
    await expect(other.ack('nobody', 'tok', 1000)).rejects.toMatchObject({ kind: 'NotFound' });
    await store.destroyNamespace();
  });

  it('validates every argument before any lookup (Validation, nothing touched)', async () => {
    await expect(other.ack('never-seen', '', 1)).rejects.toMatchObject({ kind: 'Validation' });
    await expect(other.nack('never-seen', 'tok', -1, 'e', 1)).rejects.toMatchObject({ kind: 'Validation' });
    await expect(other.extendLease('never-seen', 'tok', Number.MAX_SAFE_INTEGER, 10)).rejects.toMatchObject({
      kind: 'Validation',
    });
  });
});

/** The same random history through the memory store and a partitioned store: namespace-wide reads agree. */
describe('fan-out reads agree with the memory store', () => {
  it('listTerminalDispatches (every limit/offset), reclaimExpiredLeases, counts, queued threads', async () => {
    const url = await redisUrl();
    const memory = new MemoryMailboxStore();
    const redis = await createMailboxStore({
      redis: url,
      namespace: testNamespace('part-merge'),
      signals: 'none',
      partitions: N,
    });
    const stores: MailboxStore[] = [memory, redis];
    try {
      const threads = Array.from({ length: 10 }, (_, i) => `mt-${i}`);
      // Ties on updated_at and created_at on purpose: the order then rests on dispatch_id bytes.
      for (let i = 0; i < 60; i++) {
        const d = dispatch(`m-${(i * 7) % 60}`, threads[i % 10]!, 1000 + (i % 5));
        for (const s of stores) await s.enqueue(d);
      }
      for (let i = 0; i < 60; i += 3) {
        for (const s of stores) await s.cancel(`m-${i}`, 2000 + (i % 4));
      }
      // Claims with leases expiring at a few distinct times.
      for (const [i, t] of threads.entries()) {
        for (const s of stores) await s.claim(t, 'c', 100 + (i % 3) * 10, 3000, 1);
      }
      const terminal = async (s: MailboxStore, limit: number, offset: number): Promise<string[]> =>
        (await s.listTerminalDispatches(limit, offset)).map((d) => d.dispatch_id);
      for (const [limit, offset] of [
        [100, 0],
        [5, 0],
        [5, 5],
        [7, 13],
        [1, 19],
        [3, 19],
        [10, 40],
      ] as const) {
        expect(await terminal(redis, limit, offset), `limit ${limit} offset ${offset}`).toEqual(
          await terminal(memory, limit, offset),
        );
      }
      for (const s of ['Queued', 'Claimed', 'Cancelled'] as const) {
        expect(await redis.countDispatchesByStatus(s)).toBe(await memory.countDispatchesByStatus(s));
      }
      expect(await redis.queuedThreadIds()).toEqual(await memory.queuedThreadIds());
      // The 4 oldest leases across partitions, exactly 4.
      const strip = (ds: RunDispatch[]): string[] => ds.map((d) => d.dispatch_id).sort();
      const memReclaimed = await memory.reclaimExpiredLeases(5000, 4);
      const redisReclaimed = await redis.reclaimExpiredLeases(5000, 4);
      expect(redisReclaimed).toHaveLength(4);
      expect(strip(redisReclaimed)).toEqual(strip(memReclaimed));
      expect(strip(await redis.reclaimExpiredLeases(5000, 100))).toEqual(
        strip(await memory.reclaimExpiredLeases(5000, 100)),
      );
    } finally {
      await memory.close();
      await redis.destroyNamespace();
      await redis.close();
    }
  });
});

/**
 * Redis Cluster connections: the Functions library lands on every master (a FUNCTION LOAD through a Cluster
 * client reaches one random node) and is loaded again where a master answers "Function not found"; the 8
 * partitions spread over the 3 masters; an ioredis Cluster passed in is used and left open; and
 * `durability: 'replicated'` confirms each write with WAIT on the master that took it, failing with `Io`
 * ("may have happened") when that master's replica does not answer.
 */
import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { keySlot } from '../../src/redis/cluster.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { loadLibrary } from '../../src/redis/scripts.js';
import { directoryShardOf, partitionOf } from '../../src/redis/partitions.js';
import { testNamespace } from '../support/servers.js';
import {
  clusterBinaries,
  rawCluster,
  startRedisCluster,
  type LocalNode,
  type LocalRedisCluster,
} from '../support/cluster.js';

const PARTITIONS = 8;

const dispatch = (id: string, thread: string) =>
  queuedDispatch({ dispatch_id: id, thread_id: thread, run_id: `run-${id}`, created_at: 1000 });

/** A dispatch id whose directory entry lives in partition `p`. */
function idOf(p: number, prefix: string): string {
  for (let i = 0; ; i++) if (directoryShardOf(`${prefix}-${i}`, PARTITIONS) === p) return `${prefix}-${i}`;
}

/** A thread of partition `p`. */
function threadOf(p: number): string {
  for (let i = 0; ; i++) if (partitionOf(`t-${i}`, PARTITIONS) === p) return `t-${i}`;
}

describe.skipIf(!clusterBinaries)('Redis Cluster connections', () => {
  let redis: LocalRedisCluster;
  let raw: Cluster;

  beforeAll(async () => {
    redis = await startRedisCluster();
    raw = rawCluster(redis.seeds);
  }, 120_000);

  afterAll(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  const open = async (extra: Record<string, unknown> = {}): Promise<PartitionedRedisMailboxStore> =>
    (await createMailboxStore({
      redis: { cluster: redis.seeds },
      namespace: testNamespace('cl-conn'),
      partitions: PARTITIONS,
      signals: 'none',
      ...extra,
    })) as PartitionedRedisMailboxStore;

  /** The master of partition `p` of `store`'s namespace. */
  const masterOf = (store: PartitionedRedisMailboxStore, p: number): Promise<LocalNode> =>
    redis.masterOfSlot(keySlot((store.partitionKeyList[p] as { prefix: string }).prefix));

  it('loads the library on every master and spreads 8 partitions over all 3', async () => {
    const store = await open();
    try {
      const library = loadLibrary().name;
      for (const master of await redis.masters()) {
        const direct = new Redis({ host: '127.0.0.1', port: master.port });
        try {
          const libs = (await direct.call('FUNCTION', 'LIST', 'LIBRARYNAME', library)) as unknown[];
          expect(libs.length, `library on master ${master.port}`).toBe(1);
        } finally {
          direct.disconnect();
        }
      }
      const owners = new Set<number>();
      for (let p = 0; p < PARTITIONS; p++) owners.add((await masterOf(store, p)).port);
      expect(owners.size).toBe(3);
    } finally {
      await store.destroyNamespace();
      await store.close();
    }
  });

  it('reloads the library on a master that lost it ("Function not found") and retries the call', async () => {
    const store = await open();
    try {
      const thread = threadOf(0);
      const master = await masterOf(store, 0);
      const direct = new Redis({ host: '127.0.0.1', port: master.port });
      try {
        await direct.call('FUNCTION', 'FLUSH', 'SYNC');
      } finally {
        direct.disconnect();
      }
      await store.enqueue(dispatch('after-flush', thread));
      expect((await store.loadDispatch('after-flush'))?.status).toBe('Queued');
    } finally {
      await store.destroyNamespace();
      await store.close();
    }
  });

  it('uses an ioredis Cluster it is given and leaves it open on close', async () => {
    const given = rawCluster(redis.seeds);
    try {
      const store = await createMailboxStore({
        redis: given,
        namespace: testNamespace('cl-given'),
        partitions: 4,
        signals: 'none',
      });
      await store.enqueue(dispatch('g1', 'thread-g'));
      expect((await store.loadDispatch('g1'))?.thread_id).toBe('thread-g');
      await store.destroyNamespace();
      await store.close();
      expect(await given.ping()).toBe('PONG');
    } finally {
      given.disconnect();
    }
  });

  it('rejects bad cluster seeds and options before connecting (Validation)', async () => {
    for (const bad of [
      { redis: { cluster: [] } },
      { redis: { cluster: ['http://x:1'] } },
      { redis: { cluster: ['redis://127.0.0.1:7000/3'] } },
      { redis: { cluster: ['127.0.0.1:7000'] }, partitions: 0 },
      { redis: { cluster: ['127.0.0.1:7000'] }, partitions: 1.5 },
      { redis: { cluster: ['127.0.0.1:7000'] }, durability: 'sync' },
      { redis: { cluster: ['127.0.0.1:7000'] }, jetstream: { replicas: 2 } },
    ]) {
      const err = await createMailboxStore(bad as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(StorageError);
      expect((err as StorageError).kind, JSON.stringify(bad)).toBe('Validation');
    }
  });

  it("durability 'replicated': WAIT on the master that took the write; a silent replica ⇒ Io, the write may have happened", async () => {
    const store = await open({ durability: 'replicated', commandTimeoutMs: 1500 });
    const stopped: LocalNode[] = [];
    try {
      for (let p = 0; p < PARTITIONS; p++) await store.enqueue(dispatch(`ok-${p}`, threadOf(p)));
      // Silence the replica of partition 0's master only.
      const master = await masterOf(store, 0);
      const others: number[] = [];
      for (let p = 1; p < PARTITIONS; p++)
        if ((await masterOf(store, p)).port !== master.port) others.push(p);
      expect(others.length).toBeGreaterThan(0);
      const replicaPort = await replicaOf(master.port);
      const replica = redis.nodes.find((n) => n.port === replicaPort) as LocalNode;
      replica.signal('SIGSTOP');
      stopped.push(replica);
      const err = await store.enqueue(dispatch('unconfirmed', threadOf(0))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).kind).toBe('Io');
      expect((err as StorageError).message).toMatch(/may have happened/);
      // It did happen on the master.
      expect((await store.loadDispatch('unconfirmed'))?.status).toBe('Queued');
      // Partitions on the other masters are confirmed by their own replicas meanwhile (ids whose directory
      // entry also lives there: an enqueue waits for the directory's master too).
      for (const p of others) await store.enqueue(dispatch(idOf(p, 'other'), threadOf(p)));
      replica.signal('SIGCONT');
      stopped.pop();
      await redis.waitHealthy(30_000);
      await store.enqueue(dispatch('confirmed-again', threadOf(0)));
    } finally {
      for (const n of stopped) n.signal('SIGCONT');
      await redis.waitHealthy(30_000);
      await store.destroyNamespace();
      await store.close();
    }
  });

  /** The port of the replica attached to the master on `masterPort`. */
  async function replicaOf(masterPort: number): Promise<number> {
    const direct = new Redis({ host: '127.0.0.1', port: masterPort });
    try {
      const info = await direct.info('replication');
      const m = /slave0:ip=[^,]+,port=(\d+)/.exec(info);
      if (!m) throw new Error(`master ${masterPort} has no replica`);
      return Number(m[1]);
    } finally {
      direct.disconnect();
    }
  }
});

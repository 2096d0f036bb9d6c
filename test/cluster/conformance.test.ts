/**
 * The shared store and signal conformance suites, unchanged, on a namespace of 8 partitions spread over a
 * 6-node Redis Cluster (3 masters, 3 replicas), with Redis Streams signals and with JetStream signals on a
 * 3-node JetStream cluster (stream replicas 3).
 */
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe } from 'vitest';
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions } from '../../src/redis/index.js';
import type { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { describeConformance } from '../conformance/suite.js';
import type { MakeStore } from '../conformance/suite.js';
import { describeSignalConformance } from '../conformance/signal-suite.js';
import { testNamespace } from '../support/servers.js';
import {
  clusterBinaries,
  rawCluster,
  startClusters,
  type LocalNatsCluster,
  type LocalRedisCluster,
} from '../support/cluster.js';

const PARTITIONS = 8;

describe.skipIf(!clusterBinaries)('on a Redis Cluster and a JetStream cluster', () => {
  let redis: LocalRedisCluster;
  let nats: LocalNatsCluster;
  let raw: Cluster;

  beforeAll(async () => {
    const started = await startClusters(true);
    redis = started.redis;
    nats = started.nats as LocalNatsCluster;
    raw = rawCluster(redis.seeds);
  }, 120_000);

  afterAll(async () => {
    raw?.disconnect();
    await Promise.all([redis?.stop(), nats?.stop()]);
  });

  const open = async (
    label: string,
    extra: Partial<CreateMailboxStoreOptions> = {},
  ): Promise<PartitionedRedisMailboxStore> =>
    (await createMailboxStore({
      redis: { cluster: redis.seeds },
      namespace: testNamespace(label),
      partitions: PARTITIONS,
      signals: 'none',
      ...extra,
    })) as PartitionedRedisMailboxStore;

  describeConformance('redis cluster, 8 partitions', async () => {
    const store = await open('cl-conf');
    return {
      store,
      plant: async (record) => {
        await store.enqueue(record);
        const keys = store.keysForThread(record.thread_id);
        await raw.hset(keys.record(record.dispatch_id), 'dispatch_epoch', String(record.dispatch_epoch));
        await raw.sadd(keys.staleQueued(record.thread_id), record.dispatch_id);
      },
      cleanup: async () => {
        await store.destroyNamespace();
        await store.close();
      },
    };
  });

  const signalFixture =
    (label: string, extra: () => Partial<CreateMailboxStoreOptions>): MakeStore =>
    async () => {
      const store = await open(label, { sweepIntervalMs: 250, republishAfterMs: 1000, ...extra() });
      return {
        store,
        cleanup: async () => {
          await store.destroyNamespace();
          await store.close();
        },
      };
    };

  describeSignalConformance(
    'redis cluster + redis-streams, 8 partitions',
    signalFixture('cl-sig-rs', () => ({ signals: 'redis-streams' })),
    { sweepWaitMs: 5000 },
  );

  describeSignalConformance(
    'redis cluster + jetstream cluster (replicas 3), 8 partitions',
    signalFixture('cl-sig-js', () => ({
      nats: nats.urls.join(','),
      signals: 'jetstream',
      jetstream: { replicas: 3 },
    })),
    { sweepWaitMs: 5000 },
  );
});

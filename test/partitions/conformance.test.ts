/**
 * The shared store conformance suite, unchanged, against a namespace split into 4 partitions on one Redis
 * server: thread-addressed calls go to one partition, dispatch-addressed ones find theirs through the route
 * cache and the dispatch directory, namespace-wide ones merge all four.
 */
import { Redis } from 'ioredis';
import { createMailboxStore } from '../../src/redis/index.js';
import type { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { describeConformance } from '../conformance/suite.js';

describeConformance('redis, 4 partitions', async () => {
  const url = await redisUrl();
  const store = (await createMailboxStore({
    redis: url,
    namespace: testNamespace('conf-part'),
    signals: 'none',
    partitions: 4,
  })) as PartitionedRedisMailboxStore;
  return {
    store,
    // As test/conformance/redis.test.ts, in the partition of the record's thread.
    plant: async (record) => {
      await store.enqueue(record);
      const keys = store.keysForThread(record.thread_id);
      const raw = new Redis(url);
      try {
        await raw.hset(keys.record(record.dispatch_id), 'dispatch_epoch', String(record.dispatch_epoch));
        await raw.sadd(keys.staleQueued(record.thread_id), record.dispatch_id);
      } finally {
        raw.disconnect();
      }
    },
    cleanup: async () => {
      await store.destroyNamespace();
      await store.close();
    },
  };
});

/**
 * The shared store conformance suite (test/conformance/suite.ts), unchanged, against the Redis store with
 * signals off. Each test gets a fresh namespace, destroyed afterwards.
 */
import { Redis } from 'ioredis';
import { createMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { describeConformance } from './suite.js';

describeConformance('redis', async () => {
  const url = await redisUrl();
  const store = await createMailboxStore({
    redis: url,
    namespace: testNamespace('conf-redis'),
    signals: 'none',
  });
  return {
    store,
    // A stale-epoch Queued record cannot be produced through the API (contract.md §6.2): enqueue it, then
    // write its epoch by hand and list it in the thread's stale-Queued set, as any out-of-band writer of
    // records must (lua/README.md).
    plant: async (record) => {
      await store.enqueue(record);
      const raw = new Redis(url);
      try {
        await raw.hset(
          store.keys.record(record.dispatch_id),
          'dispatch_epoch',
          String(record.dispatch_epoch),
        );
        await raw.sadd(store.keys.staleQueued(record.thread_id), record.dispatch_id);
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

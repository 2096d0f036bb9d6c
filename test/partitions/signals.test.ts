/**
 * The shared signal conformance suite against a namespace split into 4 partitions on one Redis server: with
 * Redis Streams (one stream per partition, pulls fanned out over them) and with JetStream (one stream for
 * the namespace, the sweeper fanned out over the partitions).
 */
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions } from '../../src/redis/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { describeSignalConformance } from '../conformance/signal-suite.js';
import type { MakeStore } from '../conformance/suite.js';

const SWEEP_MS = 250;
const REPUBLISH_MS = 1000;

function fixture(label: string, extra: () => Promise<Partial<CreateMailboxStoreOptions>>): MakeStore {
  return async () => {
    const store = await createMailboxStore({
      redis: await redisUrl(),
      namespace: testNamespace(label),
      sweepIntervalMs: SWEEP_MS,
      republishAfterMs: REPUBLISH_MS,
      partitions: 4,
      ...(await extra()),
    });
    return {
      store,
      cleanup: async () => {
        await store.destroyNamespace();
        await store.close();
      },
    };
  };
}

describeSignalConformance(
  'redis-streams, 4 partitions',
  fixture('sig-part-rs', async () => ({ signals: 'redis-streams' })),
  { sweepWaitMs: 5000 },
);

describeSignalConformance(
  'jetstream, 4 partitions',
  fixture('sig-part-js', async () => ({ nats: await natsUrl(), signals: 'jetstream' })),
  { sweepWaitMs: 5000 },
);

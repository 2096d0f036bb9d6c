/**
 * The shared signal conformance suite against the distributed store with Redis Streams signals (no NATS).
 * Each test gets its own namespace, destroyed afterwards.
 */
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { describeSignalConformance } from './signal-suite.js';
import type { MakeStore } from './suite.js';

const SWEEP_MS = 250;
const REPUBLISH_MS = 1000;

function fixture(label: string, extra: () => Promise<Partial<CreateMailboxStoreOptions>>): MakeStore {
  return async () => {
    const store = await createMailboxStore({
      redis: await redisUrl(),
      namespace: testNamespace(label),
      sweepIntervalMs: SWEEP_MS,
      republishAfterMs: REPUBLISH_MS,
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
  'redis + redis-streams',
  fixture('sig-rs', async () => ({ signals: 'redis-streams' })),
  {
    sweepWaitMs: 5000,
  },
);

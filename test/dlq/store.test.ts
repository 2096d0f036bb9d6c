/**
 * The dead-letter store additions against every store: memory (with and without signals), Redis without
 * signals, Redis + Redis Streams, Redis + JetStream. Each Redis test gets its own namespace, destroyed after.
 */
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions } from '../../src/redis/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { describeDeadLetterStore } from './suite.js';
import type { DlqFixture } from './suite.js';

function redis(label: string, extra: () => Promise<Partial<CreateMailboxStoreOptions>>) {
  return async (): Promise<DlqFixture> => {
    const options = await extra();
    const store = await createMailboxStore({
      redis: await redisUrl(),
      namespace: testNamespace(label),
      signals: 'none',
      ...options,
    });
    return {
      store,
      signals: options.signals !== undefined && options.signals !== 'none',
      cleanup: async () => {
        await store.destroyNamespace();
        await store.close();
      },
    };
  };
}

describeDeadLetterStore('memory', async () => {
  const store = new MemoryMailboxStore();
  return { store, signals: true, cleanup: () => store.close() };
});
describeDeadLetterStore('memory without signals', async () => {
  const store = new MemoryMailboxStore({ signals: false });
  return { store, signals: false, cleanup: () => store.close() };
});
describeDeadLetterStore(
  'redis',
  redis('dlq-redis', async () => ({})),
);
describeDeadLetterStore(
  'redis + redis-streams',
  redis('dlq-rs', async () => ({ signals: 'redis-streams' })),
);
describeDeadLetterStore(
  'redis + jetstream',
  redis('dlq-js', async () => ({ signals: 'jetstream', nats: await natsUrl() })),
);

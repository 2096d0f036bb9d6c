/**
 * The shared signal and live conformance suites against the distributed store with NATS: JetStream signals
 * and live steering. Each test gets its own namespace (Redis keys, JetStream stream and consumer, live
 * subjects), destroyed afterwards.
 */
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions } from '../../src/redis/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { describeLiveConformance } from './live-suite.js';
import { describeSignalConformance } from './signal-suite.js';
import type { MakeStore } from './suite.js';

const SWEEP_MS = 250;
const REPUBLISH_MS = 1000;
const LIVE_TIMEOUT_MS = 1000;

function fixture(label: string, extra: () => Promise<Partial<CreateMailboxStoreOptions>>): MakeStore {
  return async () => {
    const store = await createMailboxStore({
      redis: await redisUrl(),
      namespace: testNamespace(label),
      sweepIntervalMs: SWEEP_MS,
      republishAfterMs: REPUBLISH_MS,
      liveRequestTimeoutMs: LIVE_TIMEOUT_MS,
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

const jetstream = fixture('sig-js', async () => ({ nats: await natsUrl(), signals: 'jetstream' }));

describeSignalConformance('redis + jetstream', jetstream, { sweepWaitMs: 5000 });
describeLiveConformance('redis + nats live', jetstream, { ackTimeoutMs: LIVE_TIMEOUT_MS });

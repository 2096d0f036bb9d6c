/**
 * Metrics of the Redis store with an SDK installed globally BEFORE the store is created: the store
 * instruments itself (no explicit call). Redis Streams signals, a Mailbox workload, then the gauges read
 * through the store's index probe.
 */
import { metrics } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { METRIC, instrumentMailbox } from '../../src/metrics/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { eventually } from '../mailbox/wait.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { testMetrics } from './reader.js';
import type { TestMetrics } from './reader.js';

describe('metrics: redis store, SDK installed globally', () => {
  let m: TestMetrics;
  let store: RedisMailboxStore;
  let namespace: string;

  beforeAll(() => {
    m = testMetrics();
    metrics.setGlobalMeterProvider(m.provider);
  });
  afterAll(async () => {
    metrics.disable();
    await m.shutdown();
  });
  beforeEach(async () => {
    namespace = testNamespace('metrics-redis');
    store = await createMailboxStore({
      redis: await redisUrl(),
      namespace,
      signals: 'redis-streams',
      sweepIntervalMs: 100,
      republishAfterMs: 200,
    });
  });
  afterEach(async () => {
    await store.destroyNamespace();
    await store.close();
  });

  it('instruments itself: store operations, claims, signals and the status gauge of its namespace', async () => {
    expect(Object.hasOwn(store, 'claim')).toBe(true);
    const mailbox = new Mailbox({
      store,
      executor: async () => ({ kind: 'completed' }),
      config: { sweepIntervalMs: 3_600_000, gcIntervalMs: 3_600_000, signalFetchExpiresMs: 100 },
    });
    // The Mailbox instrumented itself too (its stop() is wrapped to remove its gauge).
    expect(Object.hasOwn(mailbox, 'stop')).toBe(true);
    expect(instrumentMailbox(mailbox)).toBe(true);
    let completed = 0;
    mailbox.on('completed', () => completed++);
    await mailbox.start();
    try {
      for (let i = 0; i < 6; i++) await mailbox.submitBackground({ threadId: `t${i % 2}` });
      await eventually('every run completed', () => completed === 6 || undefined);
    } finally {
      await mailbox.stop();
    }
    const s = await m.collect();
    const ns = { backend: 'redis', namespace };
    expect(s.count(METRIC.storeOperationDuration, { operation: 'enqueue' })).toBe(6);
    expect(s.sum(METRIC.claimAttempt, { ...ns, result: 'claimed' })).toBe(6);
    expect(s.gauge(METRIC.dispatches, { ...ns, status: 'Acked' })).toBe(6);
    expect(s.gauge(METRIC.dispatches, { ...ns, status: 'Queued' })).toBe(0);
    expect(s.count(METRIC.enqueueToStart)).toBeGreaterThanOrEqual(6);
    // Every dispatch ran, so each was either claimed from a pulled signal or inline; pulled signals settle.
    const pulled = s.sum(METRIC.signalPulled, ns);
    expect(s.sum(METRIC.signalAck, ns) + s.sum(METRIC.signalNack, ns)).toBeLessThanOrEqual(pulled);
  });

  it('reports the expired-lease age from the lease index, and republishes of the sweeper', async () => {
    const at = Date.now() - 60_000;
    await store.enqueue(queuedDispatch({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: at }));
    await store.enqueue(queuedDispatch({ dispatch_id: 'd2', thread_id: 't2', run_id: 'r2', created_at: at }));
    await store.claim('t1', 'c1', 1_000, at, 1); // expired 59 s ago
    const s = await m.collect();
    const ns = { backend: 'redis', namespace };
    expect(s.gauge(METRIC.claimedLeaseAge, ns)).toBeGreaterThanOrEqual(59_000);
    expect(s.gauge(METRIC.dispatches, { ...ns, status: 'Claimed' })).toBe(1);
    // Nobody pulls d2's signal: the sweeper republishes it every 200 ms.
    await eventually('a republish', async () => {
      return (await m.collect()).sum(METRIC.signalRepublish, ns) > 0 || undefined;
    });
    expect((await m.collect()).gauge(METRIC.queuedWithoutSignalAge, ns)).toBeLessThan(10_000);
    const [reclaimed] = await store.reclaimExpiredLeases(Date.now(), 10);
    expect(reclaimed?.status).toBe('Queued');
    const after = await m.collect();
    expect(after.gauge(METRIC.claimedLeaseAge, ns)).toBe(0);
    expect(after.sum(METRIC.expiredClaimReclaimed, { ...ns, status: 'Queued' })).toBe(1);
  });
});

/**
 * Fault 4b — NATS down for longer than nats.js's default reconnect budget (10 attempts × 2 s).
 *
 * A long-running service must not lose its signal and live paths for good because NATS was down for half a
 * minute: once the server is back, a store created with a NATS URL must signal and steer again, without a
 * process restart. (Redis, the source of truth, is untouched; enqueue keeps working throughout.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { LiveRunTarget } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, disposeStores, eventually, sleep, within } from './support.js';

/** Longer than nats.js's default reconnect budget (maxReconnectAttempts 10 × reconnectTimeWait 2 s + jitter). */
const OUTAGE_MS = 26_000;

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
let store: RedisMailboxStore;
const namespace = testNamespace('fault-nats-long');

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  store = await createMailboxStore({
    redis: redis.url,
    nats: nats.url,
    namespace,
    sweepIntervalMs: 300,
    republishAfterMs: 1000,
    liveRequestTimeoutMs: 1000,
    commandTimeoutMs: 2000,
  });
});

afterAll(async () => {
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

describe('NATS outage longer than the client default reconnect budget', () => {
  // Regression: with nats.js defaults (maxReconnectAttempts 10) the connection closed for good after ~21 s
  // without a server, leaving signals and live broken until the process restarted.
  it('signals and live work again once NATS is back', { timeout: 90_000 }, async () => {
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'long-1', thread_id: 'long-t', run_id: 'r', created_at: 1 }),
    );
    const first = await store.pullDispatchSignals(10, 2000);
    for (const e of first) await e.receipt.ack();
    expect(first.map((e) => e.dispatch_id)).toContain('long-1');

    nats.signal('SIGKILL');
    await sleep(OUTAGE_MS);
    // Redis is the source of truth: enqueue works during the outage.
    await within(
      store.enqueue(
        queuedDispatch({ dispatch_id: 'long-2', thread_id: 'long-t2', run_id: 'r', created_at: 2 }),
      ),
      10_000,
      'enqueue during the outage',
    );
    await nats.restart();

    await eventually(
      async () => {
        for (const e of await store.pullDispatchSignals(10, 300)) {
          await e.receipt.ack();
          if (e.dispatch_id === 'long-2') return true;
        }
        return false;
      },
      20_000,
      'the signal of a dispatch enqueued during the outage',
      250,
    );
    const target: LiveRunTarget = { thread_id: 'long-live', run_id: 'r' };
    const stream = await store.openLiveChannelFor(target);
    const got = (async () => {
      for await (const entry of stream) {
        await entry.receipt.ack();
        return entry.command;
      }
      return null;
    })();
    expect(await store.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
    expect(await got).toBe('Cancel');
    await stream.close();
  });
});

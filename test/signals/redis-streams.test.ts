import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { redisKeys } from '../../src/redis/keys.js';
import { createRedisStreamsSignals } from '../../src/signals/redis-streams.js';
import type { RedisStreamsSignals } from '../../src/signals/redis-streams.js';
import { redisUrl, spawnRedis, testNamespace } from '../support/servers.js';
import { describeTransportSuite, pullUntil } from './transport-suite.js';
import type { TransportHarness } from './transport-suite.js';

let redis: Redis | null = null;

beforeAll(async () => {
  redis = new Redis(await redisUrl());
});
afterAll(async () => {
  await redis?.quit();
});

const shared = (): Redis => {
  if (!redis) throw new Error('no redis');
  return redis;
};

function open(
  ns: string | null,
  extra: { idleReclaimMs?: number; conn?: Redis } = {},
): Promise<RedisStreamsSignals> {
  return createRedisStreamsSignals({
    redis: extra.conn ?? shared(),
    keys: redisKeys(ns),
    consumerName: `c-${randomBytes(4).toString('hex')}`,
    ...(extra.idleReclaimMs === undefined ? {} : { idleReclaimMs: extra.idleReclaimMs }),
  });
}

const harness: TransportHarness = {
  open: (ns) => open(ns),
  async plantBlank(ns, threadId) {
    await shared().xadd(redisKeys(ns).signalStream, '*', 't', threadId, 'd', '');
  },
};

describeTransportSuite('redis-streams', () => harness);

describe('redis streams signals: specifics', () => {
  it('delivers entries XADDed before any puller existed (group created from id 0), in the store format', async () => {
    const ns = testNamespace('sig-early');
    const keys = redisKeys(ns);
    await shared().xadd(keys.signalStream, '*', 't', 't-early', 'd', 'd-early');
    const t = await open(ns);
    try {
      const got = await pullUntil(t, (s) => s.dispatch_id === 'd-early', 3000);
      expect(got?.signal.thread_id).toBe('t-early');
      expect(got?.signal.receipt.redeliveryAttempts()).toBe(1);
      await got?.signal.receipt.ack();
      await t.publish([{ thread_id: 't-pub', dispatch_id: 'd-pub' }]);
      const raw = await shared().xrange(keys.signalStream, '-', '+');
      expect(raw.map(([, fields]) => fields)).toEqual([['t', 't-pub', 'd', 'd-pub']]);
    } finally {
      await t.destroy();
    }
  });

  it('ack deletes the entry: the stream holds only outstanding signals', async () => {
    const ns = testNamespace('sig-xdel');
    const keys = redisKeys(ns);
    const t = await open(ns);
    try {
      await t.publish(Array.from({ length: 20 }, (_, i) => ({ thread_id: 't', dispatch_id: `d${i}` })));
      let acked = 0;
      const deadline = Date.now() + 5000;
      while (acked < 20 && Date.now() < deadline) {
        for (const s of await t.pull(8, 300)) {
          await s.receipt.ack();
          acked++;
        }
      }
      expect(acked).toBe(20);
      expect(await shared().xlen(keys.signalStream)).toBe(0);
      const pending = (await shared().xpending(keys.signalStream, keys.signalGroup)) as unknown[];
      expect(pending[0]).toBe(0);
    } finally {
      await t.destroy();
    }
  });

  it('a nack of a delivery that was already settled adds nothing (no signal amplification)', async () => {
    const ns = testNamespace('sig-amp');
    const keys = redisKeys(ns);
    const t = await open(ns);
    try {
      await t.publish([{ thread_id: 't', dispatch_id: 'd' }]);
      const [s] = await t.pull(1, 2000);
      if (!s) throw new Error('no signal');
      await s.receipt.ack();
      await s.receipt.nack();
      await s.receipt.nackWithDelay(10);
      expect(await shared().xlen(keys.signalStream)).toBe(0);
      expect(await shared().zcard(keys.signalDelayed)).toBe(0);
      expect(await t.pull(10, 300)).toEqual([]);
    } finally {
      await t.destroy();
    }
  });

  it("reclaims a crashed puller's unacked entry after idleReclaimMs, counting the delivery", async () => {
    const ns = testNamespace('sig-reclaim');
    const crashed = await open(ns);
    const survivor = await open(ns, { idleReclaimMs: 300 });
    try {
      await crashed.publish([{ thread_id: 't-r', dispatch_id: 'd-r' }]);
      const held = await crashed.pull(1, 2000);
      expect(held.map((s) => s.dispatch_id)).toEqual(['d-r']);
      await crashed.close(); // never settles it
      const started = Date.now();
      const got = await pullUntil(survivor, (s) => s.dispatch_id === 'd-r', 8000);
      expect(got, 'reclaimed').not.toBeNull();
      expect(got?.signal.receipt.redeliveryAttempts()).toBe(2);
      expect(got?.signal.thread_id).toBe('t-r');
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      await got?.signal.receipt.ack();
    } finally {
      await survivor.destroy();
    }
  });

  it('redelivery counts survive a delayed nack followed by a reclaim', async () => {
    const ns = testNamespace('sig-count');
    const a = await open(ns);
    const b = await open(ns, { idleReclaimMs: 200 });
    try {
      await a.publish([{ thread_id: 't', dispatch_id: 'd' }]);
      const first = await pullUntil(a, (s) => s.dispatch_id === 'd', 2000);
      await first?.signal.receipt.nackWithDelay(50);
      const second = await pullUntil(a, (s) => s.dispatch_id === 'd', 3000);
      expect(second?.signal.receipt.redeliveryAttempts()).toBe(2);
      await a.close(); // crash while holding delivery 2
      const third = await pullUntil(b, (s) => s.dispatch_id === 'd', 8000);
      expect(third?.signal.receipt.redeliveryAttempts()).toBe(3);
      await third?.signal.receipt.ack();
    } finally {
      await b.destroy();
    }
  });

  it('recreates a vanished stream and group on the next pull', async () => {
    const ns = testNamespace('sig-nogroup');
    const keys = redisKeys(ns);
    const t = await open(ns);
    try {
      await shared().del(keys.signalStream);
      expect(await t.pull(10, 100)).toEqual([]);
      await shared().xadd(keys.signalStream, '*', 't', 't', 'd', 'd-back');
      const got = await pullUntil(t, (s) => s.dispatch_id === 'd-back', 3000);
      expect(got).not.toBeNull();
      await got?.signal.receipt.ack();
    } finally {
      await t.destroy();
    }
  });

  it('destroy() deletes the stream, group and delayed set, and refuses without a namespace', async () => {
    const ns = testNamespace('sig-destroy');
    const keys = redisKeys(ns);
    const t = await open(ns);
    await t.publish([
      { thread_id: 't', dispatch_id: 'a' },
      { thread_id: 't', dispatch_id: 'b' },
    ]);
    const batch = await t.pull(1, 2000);
    await batch[0]?.receipt.nackWithDelay(60_000);
    expect(await shared().zcard(keys.signalDelayed)).toBe(1);
    await t.destroy();
    expect(await shared().exists(keys.signalStream, keys.signalDelayed)).toBe(0);
    // The default namespace is checked on a private server, so the shared one never gets its keys.
    const server = await spawnRedis();
    const conn = new Redis(server.url);
    try {
      const plain = await open(null, { conn });
      const err = await plain.destroy().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).kind).toBe('Validation');
      await plain.close();
      expect(await conn.exists(redisKeys(null).signalStream)).toBe(1);
    } finally {
      conn.disconnect();
      await server.stop();
    }
  });

  it('rejects bad options with Validation', async () => {
    for (const bad of [
      { consumerName: '' },
      { consumerName: '  ' },
      { idleReclaimMs: 0 },
      { idleReclaimMs: 1.5 },
    ]) {
      const err = await createRedisStreamsSignals({
        redis: shared(),
        keys: redisKeys(testNamespace('sig-opt')),
        consumerName: 'c',
        ...bad,
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as StorageError).kind).toBe('Validation');
    }
  });

  it('several concurrent pulls on one transport each get their own blocking connection', async () => {
    const ns = testNamespace('sig-pool');
    const t = await open(ns);
    try {
      const started = Date.now();
      const pulls = [t.pull(1, 3000), t.pull(1, 3000), t.pull(1, 3000)];
      await new Promise((r) => setTimeout(r, 150));
      await t.publish([
        { thread_id: 't', dispatch_id: 'p1' },
        { thread_id: 't', dispatch_id: 'p2' },
        { thread_id: 't', dispatch_id: 'p3' },
      ]);
      const results = await Promise.all(pulls);
      const ids = results.flat().map((s) => s.dispatch_id);
      expect(ids.sort()).toEqual(['p1', 'p2', 'p3']);
      expect(Date.now() - started, 'no pull waited for another').toBeLessThan(2500);
      for (const s of results.flat()) await s.receipt.ack();
    } finally {
      await t.destroy();
    }
  });
});

describe('redis streams signals: redis restart (own server, AOF)', () => {
  it('outstanding signals survive a restart and the puller reconnects', async () => {
    const server = await spawnRedis({ appendOnly: true });
    const conn = new Redis(server.url, { maxRetriesPerRequest: 3, retryStrategy: () => 100 });
    conn.on('error', () => undefined);
    const ns = testNamespace('sig-redis-restart');
    try {
      const t = await open(ns, { conn, idleReclaimMs: 500 });
      await t.publish([
        { thread_id: 't', dispatch_id: 'fresh' },
        { thread_id: 't', dispatch_id: 'held' },
      ]);
      const held = await pullUntil(
        t,
        (s) => s.dispatch_id === 'held',
        3000,
        () => undefined,
      );
      expect(held).not.toBeNull();
      await t.publish([{ thread_id: 't', dispatch_id: 'fresh-2' }]);
      await new Promise((r) => setTimeout(r, 100));
      await server.restart();
      const got = new Map<string, number>();
      const deadline = Date.now() + 15_000;
      while (got.size < 2 && Date.now() < deadline) {
        const batch = await t.pull(10, 500).catch(async () => {
          await new Promise((r) => setTimeout(r, 200));
          return [];
        });
        for (const s of batch) {
          if (!got.has(s.dispatch_id)) got.set(s.dispatch_id, s.receipt.redeliveryAttempts() ?? 0);
          await s.receipt.ack();
        }
      }
      expect(got.get('fresh-2')).toBe(1);
      expect(got.get('held')).toBe(2);
      await t.destroy();
    } finally {
      conn.disconnect();
      await server.stop();
    }
  });
});

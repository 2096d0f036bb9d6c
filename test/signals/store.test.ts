/**
 * Signals through the distributed store (createMailboxStore) with each transport: one puller per signal,
 * no stall after a retry, sweeper repair of lost signals, and (Redis Streams) the signal written by the
 * state change's own script.
 */
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { createMailboxStore, redisKeys } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions, RedisMailboxStore } from '../../src/redis/index.js';
import { signalStreamName } from '../../src/signals/jetstream.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { pullFor } from '../support/signals.js';

type Mode = 'jetstream' | 'redis-streams';

let raw: Redis | null = null;
beforeAll(async () => {
  raw = new Redis(await redisUrl());
});
afterAll(async () => {
  await raw?.quit();
});

async function openStore(
  mode: Mode,
  namespace: string,
  extra: Partial<CreateMailboxStoreOptions> = {},
): Promise<RedisMailboxStore> {
  return createMailboxStore({
    redis: await redisUrl(),
    ...(mode === 'jetstream' ? { nats: await natsUrl() } : {}),
    signals: mode,
    namespace,
    // The sweeper stays out of the way unless a case turns it on.
    sweepIntervalMs: 86_400_000,
    republishAfterMs: 1000,
    ...extra,
  });
}

function dispatch(id: string, thread: string, availableAt = Date.now()): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: availableAt,
    updated_at: availableAt,
    available_at: availableAt,
    max_attempts: 5,
  });
}

for (const mode of ['jetstream', 'redis-streams'] as const) {
  describe(`store signals: ${mode}`, () => {
    it("an enqueue's signal reaches exactly one of several pullers", async () => {
      const ns = testNamespace(`st-one-${mode}`);
      const stores = [await openStore(mode, ns), await openStore(mode, ns), await openStore(mode, ns)];
      try {
        const total = 30;
        const seen: { id: string; by: number }[] = [];
        let stop = false;
        const loops = stores.map(async (store, by) => {
          while (!stop) {
            for (const e of await store.pullDispatchSignals(8, 200)) {
              seen.push({ id: e.dispatch_id, by });
              // As the scheduler does: claim, then ack. A Claimed dispatch is never republished.
              await store.claimDispatch(e.dispatch_id, `c${by}`, 60_000, Date.now());
              await e.receipt.ack();
            }
          }
        });
        for (let i = 0; i < total; i++) await stores[i % 3]?.enqueue(dispatch(`d${i}`, `t${i % 5}`));
        const deadline = Date.now() + 10_000;
        while (seen.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 300));
        stop = true;
        await Promise.all(loops);
        expect(seen.map((s) => s.id).sort()).toEqual(Array.from({ length: total }, (_, i) => `d${i}`).sort());
      } finally {
        await stores[0]?.destroyNamespace();
        for (const s of stores) await s.close();
      }
    });

    it('a nacked-with-retry dispatch is signalled again once available_at passes (no sweeper, no stall)', async () => {
      const ns = testNamespace(`st-retry-${mode}`);
      const store = await openStore(mode, ns);
      try {
        await store.enqueue(dispatch('d-retry', 't-retry'));
        const first = await pullFor(store, 'd-retry', 5000);
        expect(first).not.toBeNull();
        const claimed = await store.claimDispatch('d-retry', 'c1', 60_000, Date.now());
        if (!claimed?.claim_token) throw new Error('claim failed');
        await first?.entry.receipt.ack();
        const retryAt = Date.now() + 400;
        await store.nack('d-retry', claimed.claim_token, retryAt, 'transient', Date.now());
        const again = await pullFor(store, 'd-retry', 5000);
        expect(again, 'signalled again after retry_at').not.toBeNull();
        expect(again?.at ?? 0).toBeGreaterThanOrEqual(retryAt);
        const reclaimed = await store.claim('t-retry', 'c1', 60_000, Date.now(), 1);
        expect(reclaimed.map((d) => d.dispatch_id)).toEqual(['d-retry']);
        await again?.entry.receipt.ack();
      } finally {
        await store.destroyNamespace();
        await store.close();
      }
    });

    it('a Queued dispatch without a signal is republished by the sweeper', async () => {
      const ns = testNamespace(`st-sweep-${mode}`);
      // Plant: a store without signals writes the record and publishes nothing.
      const planter = await createMailboxStore({
        redis: await redisUrl(),
        signals: 'none',
        namespace: ns,
        republishAfterMs: 300,
      });
      const store = await openStore(mode, ns, { sweepIntervalMs: 200, republishAfterMs: 300 });
      try {
        await planter.enqueue(dispatch('d-orphan', 't-orphan'));
        if (mode === 'redis-streams') expect(await raw?.xlen(redisKeys(ns).signalStream)).toBe(0);
        const got = await pullFor(store, 'd-orphan', 8000);
        expect(got, 'republished by the sweeper').not.toBeNull();
        expect(got?.entry.thread_id).toBe('t-orphan');
        await got?.entry.receipt.ack();
      } finally {
        await store.destroyNamespace();
        await store.close();
        await planter.close();
      }
    });

    it('the sweeper does not republish a dispatch that is claimed', async () => {
      const ns = testNamespace(`st-quiet-${mode}`);
      const store = await openStore(mode, ns, { sweepIntervalMs: 100, republishAfterMs: 200 });
      try {
        await store.enqueue(dispatch('d-busy', 't-busy'));
        const first = await pullFor(store, 'd-busy', 5000);
        expect(await store.claimDispatch('d-busy', 'c1', 60_000, Date.now())).not.toBeNull();
        await first?.entry.receipt.ack();
        expect(await pullFor(store, 'd-busy', 1200)).toBeNull();
      } finally {
        await store.destroyNamespace();
        await store.close();
      }
    });
  });
}

describe('store signals: jetstream publish failure', () => {
  it('an enqueue whose publish was lost (stream deleted) is republished by the sweeper', async () => {
    const ns = testNamespace('st-lost-js');
    const store = await openStore('jetstream', ns, { sweepIntervalMs: 200, republishAfterMs: 500 });
    const nc = await connect({ servers: await natsUrl() });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(signalStreamName(ns));
      // The publish is answered with 503 (no stream): logged, not thrown; the transport recreates the stream.
      await store.enqueue(dispatch('d-lost', 't-lost'));
      const got = await pullFor(store, 'd-lost', 10_000);
      expect(got, 'republished once the stream is back').not.toBeNull();
      await got?.entry.receipt.ack();
    } finally {
      await nc.close();
      await store.destroyNamespace();
      await store.close();
    }
  });
});

describe('store signals: redis-streams writes the signal in the state change script', () => {
  it('enqueue, nack and lease-expiry requeue leave their signal in the stream when the call returns', async () => {
    const ns = testNamespace('st-atomic');
    const keys = redisKeys(ns);
    const store = await openStore('redis-streams', ns);
    const r = raw as Redis;
    const fields = async (): Promise<string[][]> =>
      (await r.xrange(keys.signalStream, '-', '+')).map(([, f]) => f);
    try {
      await store.enqueue(dispatch('d1', 't1'));
      expect(await fields()).toEqual([['t', 't1', 'd', 'd1']]);
      await r.del(keys.signalStream);
      await store.pullDispatchSignals(1, 0); // recreates the group
      const claimed = await store.claimDispatch('d1', 'c1', 60_000, Date.now());
      if (!claimed?.claim_token) throw new Error('claim failed');
      await store.nack('d1', claimed.claim_token, Date.now() + 10, 'x', Date.now());
      expect(await fields()).toEqual([['t', 't1', 'd', 'd1']]);
      await r.xtrim(keys.signalStream, 'MAXLEN', 0);
      const again = await store.claimDispatch('d1', 'c1', 1, Date.now());
      expect(again).not.toBeNull();
      await new Promise((res) => setTimeout(res, 10));
      await store.reclaimExpiredLeases(Date.now(), 10);
      expect(await fields()).toEqual([['t', 't1', 'd', 'd1']]);
    } finally {
      await store.destroyNamespace();
      await store.close();
    }
  });
});

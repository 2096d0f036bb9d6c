/**
 * Atomicity under real concurrency: many clients (separate connections, so calls really interleave on the
 * server) race on the same thread, dispatch, lease or dedupe key; each Lua script must let exactly one win.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl } from '../support/servers.js';
import { dispatch, openFixture, type RedisFixture } from './helpers.js';

const LEASE = 30_000;
let fx: RedisFixture;
/** Extra stores on the same namespace, each with its own connection. */
let peers: RedisMailboxStore[] = [];

beforeAll(async () => {
  fx = await openFixture('redis-concurrency');
  peers = await Promise.all(
    Array.from({ length: 8 }, async () =>
      createMailboxStore({ redis: await redisUrl(), namespace: fx.namespace, signals: 'none' }),
    ),
  );
});

afterAll(async () => {
  await Promise.all(peers.map((p) => p.close()));
  await fx.cleanup();
});

const peer = (i: number): RedisMailboxStore => peers[i % peers.length] as RedisMailboxStore;

describe('Redis store atomicity under concurrency', () => {
  it('64 concurrent claims on one thread: exactly one winner', async () => {
    for (let i = 0; i < 5; i++) await fx.store.enqueue(dispatch(`c64-${i}`, 't-c64', 1000 + i));
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => peer(i).claim('t-c64', `consumer-${i}`, LEASE, 2000, 1)),
    );
    const winners = results.filter((r) => r.length > 0);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.map((d) => d.dispatch_id)).toEqual(['c64-0']);
    expect(await fx.store.listDispatches('t-c64', ['Claimed'], 10, 0)).toHaveLength(1);
  });

  it('32 concurrent claimDispatch on different dispatches of one thread: exactly one', async () => {
    const ids = Array.from({ length: 32 }, (_, i) => `c32-${i}`);
    await Promise.all(ids.map((id, i) => peer(i).enqueue(dispatch(id, 't-c32', 1000 + i))));
    const results = await Promise.all(ids.map((id, i) => peer(i).claimDispatch(id, `c-${i}`, LEASE, 2000)));
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await fx.store.listDispatches('t-c32', ['Claimed'], 100, 0)).toHaveLength(1);
    expect(await fx.store.listDispatches('t-c32', ['Queued'], 100, 0)).toHaveLength(31);
  });

  it('concurrent reclaimExpiredLeases: each transition is returned exactly once', async () => {
    const n = 40;
    for (let i = 0; i < n; i++) {
      await fx.store.enqueue(dispatch(`rc-${i}`, `t-rc-${i}`, 1000, { max_attempts: i % 2 === 0 ? 1 : 5 }));
      expect(await fx.store.claim(`t-rc-${i}`, 'c', 100, 1000, 1)).toHaveLength(1);
    }
    const batches = await Promise.all(
      Array.from({ length: 16 }, (_, i) => peer(i).reclaimExpiredLeases(5000, 7)),
    );
    const returned = batches.flat();
    const ids = returned.map((d) => d.dispatch_id);
    expect(new Set(ids).size).toBe(ids.length);
    // 16 sweeps × 7 >= 40: all of them, each once; the rest of the sweeps found nothing left.
    expect(ids.sort()).toEqual(Array.from({ length: n }, (_, i) => `rc-${i}`).sort());
    for (const d of returned) {
      expect(d.attempt_count).toBe(1);
      expect(d.status).toBe(Number(d.dispatch_id.slice(3)) % 2 === 0 ? 'DeadLetter' : 'Queued');
    }
    expect(await fx.store.reclaimExpiredLeases(6000, 100)).toEqual([]);
  });

  it('concurrent enqueues with the same dedupe key: exactly one accepted', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 32 }, (_, i) =>
        peer(i).enqueue(dispatch(`dd-${i}`, 't-dd', 1000, { dedupe_key: 'same' })),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') {
        expect(r.reason).toBeInstanceOf(StorageError);
        expect((r.reason as StorageError).kind).toBe('AlreadyExists');
        expect((r.reason as StorageError).detail).toBe('dedupe_key=same');
      }
    }
    expect(await fx.store.listDispatches('t-dd', null, 100, 0)).toHaveLength(1);
  });

  it('interrupts racing claims and enqueues never leave a Queued dispatch of an old epoch claimable', async () => {
    const thread = 't-int-race';
    const claimed: RunDispatch[] = [];
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 120; i++) {
      const s = peer(i);
      if (i % 3 === 0) ops.push(s.enqueue(dispatch(`ir-${i}`, thread, 1000 + i)));
      else if (i % 3 === 1)
        ops.push(s.claim(thread, `c-${i}`, LEASE, 5000, 2).then((r) => claimed.push(...r)));
      else ops.push(s.interrupt(thread, 5000 + i));
    }
    await Promise.all(ops);
    const epoch = await fx.store.currentDispatchEpoch(thread);
    expect(epoch).toBe(40);
    const all = await fx.store.listDispatches(thread, null, 1000, 0);
    for (const d of all) {
      // Every Queued dispatch left over carries the current epoch: nothing stale is claimable.
      if (d.status === 'Queued') expect(d.dispatch_epoch).toBe(epoch);
    }
    // Whatever was claimed was claimed at the epoch it was enqueued in, and never twice.
    const ids = claimed.map((d) => d.dispatch_id);
    expect(new Set(ids).size).toBe(ids.length);
    // Claims after the dust settled only ever return current-epoch dispatches.
    for (const d of claimed) {
      const now = await fx.store.loadDispatch(d.dispatch_id);
      expect(['Claimed', 'Superseded']).toContain(now?.status);
    }
    const stale = all.filter((d) => d.status === 'Claimed' && d.dispatch_epoch < epoch);
    for (const d of stale) {
      await expect(fx.store.ack(d.dispatch_id, d.claim_token as string, 9000)).rejects.toMatchObject({
        kind: 'VersionConflict',
      });
    }
    const after = await fx.store.claim(thread, 'c-final', LEASE, 9000, 100);
    for (const d of after) expect(d.dispatch_epoch).toBe(epoch);
  });

  it('counters stay exact after a concurrent storm (own namespace)', async () => {
    const own = await openFixture('redis-storm');
    const stores = await Promise.all(
      Array.from({ length: 4 }, async () =>
        createMailboxStore({ redis: await redisUrl(), namespace: own.namespace, signals: 'none' }),
      ),
    );
    const peer = (i: number): RedisMailboxStore => stores[i % stores.length] as RedisMailboxStore;
    const fx = own;
    const before: Record<string, number> = {};
    const statuses = ['Queued', 'Claimed', 'Acked', 'Cancelled', 'Superseded', 'DeadLetter'] as const;
    const thread = (i: number): string => `t-storm-${i % 10}`;
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const s = peer(i);
      ops.push(
        s.enqueue(dispatch(`st-${i}`, thread(i), 1000 + i)).then(async () => {
          const c = await s.claim(thread(i), `c-${i}`, LEASE, 3000, 1);
          for (const d of c) await s.ack(d.dispatch_id, d.claim_token as string, 3100);
          if (i % 7 === 0) await s.cancel(`st-${i}`, 3200);
        }),
      );
    }
    await Promise.all(ops);
    let total = 0;
    for (const s of statuses) {
      before[s] = await fx.store.countDispatchesByStatus(s);
      total += before[s] ?? 0;
    }
    // Counts match what the per-thread lists say, status by status.
    for (const s of statuses) {
      let listed = 0;
      for (let t = 0; t < 10; t++)
        listed += (await fx.store.listDispatches(`t-storm-${t}`, [s], 1000, 0)).length;
      expect(listed, s).toBe(before[s]);
    }
    expect(total).toBe(200);
    expect(before.Acked).toBe(200 - (before.Cancelled ?? 0) - (before.Queued ?? 0) - (before.Claimed ?? 0));
    await Promise.all(stores.map((s) => s.close()));
    await own.cleanup();
  });
});

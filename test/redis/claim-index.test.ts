/**
 * The per-thread ready / waiting indexes behind `claim`: dispatches are promoted once when they become
 * available, the ready set is only a hint (a claim with an earlier `now` moves an early entry back), and
 * order is always (priority, created_at, dispatch_id) among the dispatches available at `now`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeAll(async () => {
  fx = await openFixture('redis-claim-index');
});
afterAll(async () => {
  await fx.cleanup();
});

const ids = (ds: { dispatch_id: string }[]): string[] => ds.map((d) => d.dispatch_id);

describe('claim indexes', () => {
  it('results never depend on the order of `now`s across calls', async () => {
    // a: available at its own updated_at (3000) → enqueued straight into the ready set.
    await fx.store.enqueue(dispatch('a', 't-now', 10, { priority: 0, available_at: 3000, updated_at: 3000 }));
    await fx.store.enqueue(dispatch('b', 't-now', 20, { available_at: 1000, updated_at: 1000 }));
    const first = await fx.store.claim('t-now', 'c', 1000, 2000, 5);
    expect(ids(first)).toEqual(['b']);
    expect(await fx.raw.zcard(fx.store.keys.waiting('t-now'))).toBe(1); // a moved back to waiting
    await fx.store.ack('b', first[0]?.claim_token as string, 2100);
    expect(await fx.store.claim('t-now', 'c', 1000, 2999, 5)).toEqual([]);
    expect(ids(await fx.store.claim('t-now', 'c', 1000, 3000, 5))).toEqual(['a']);
  });

  it('a delayed high-priority dispatch is promoted when available and wins over older ready ones', async () => {
    await fx.store.enqueue(dispatch('low-1', 't-prom', 100, { priority: 200 }));
    await fx.store.enqueue(dispatch('low-2', 't-prom', 101, { priority: 200 }));
    await fx.store.enqueue(dispatch('urgent', 't-prom', 500, { priority: 0, available_at: 5000 }));
    const a = await fx.store.claim('t-prom', 'c', 1000, 4000, 1);
    expect(ids(a)).toEqual(['low-1']);
    await fx.store.ack('low-1', a[0]?.claim_token as string, 4100);
    const b = await fx.store.claim('t-prom', 'c', 1000, 5000, 1);
    expect(ids(b)).toEqual(['urgent']);
    await fx.store.ack('urgent', b[0]?.claim_token as string, 5100);
    expect(ids(await fx.store.claim('t-prom', 'c', 1000, 5200, 1))).toEqual(['low-2']);
  });

  it('thousands of delayed dispatches stay in waiting; a claim only promotes what is due', async () => {
    const n = 2000;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        fx.store.enqueue(dispatch(`later-${i}`, 't-many', 1000 + i, { available_at: 1_000_000 + i })),
      ),
    );
    await fx.store.enqueue(dispatch('now', 't-many', 5000));
    expect(ids(await fx.store.claim('t-many', 'c', 1000, 6000, 1))).toEqual(['now']);
    expect(await fx.raw.zcard(fx.store.keys.waiting('t-many'))).toBe(n);
    expect(await fx.raw.zcard(fx.store.keys.ready('t-many'))).toBe(0);
    expect(await fx.store.listDispatches('t-many', ['Queued'], 3, 0)).toHaveLength(3);
    expect(await fx.store.countDispatchesByStatus('Queued')).toBeGreaterThanOrEqual(n);
  });
});

/**
 * Memory-store specifics beyond the shared conformance suite: purge epoch GC, real concurrency (Promise.all),
 * every index emptied by purge (bounded memory at scale), non-monotonic `now`, the attempts edge case,
 * the plant hook, options and close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import type { MemoryMailboxStoreOptions } from '../../src/memory/index.js';

const LEASE = 30_000;
const stores: MemoryMailboxStore[] = [];

function makeStore(options: MemoryMailboxStoreOptions = { signals: false }): MemoryMailboxStore {
  const store = new MemoryMailboxStore(options);
  stores.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function dispatch(id: string, thread: string, at = 1000, extra: Partial<RunDispatch> = {}): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: at,
    available_at: at,
    ...extra,
  });
}

function tokenOf(d: RunDispatch | null | undefined): string {
  if (!d?.claim_token) throw new Error('no claim token');
  return d.claim_token;
}

describe('purge epoch GC', () => {
  it('drops epoch state only for fully drained threads; re-enqueue on a drained thread starts at epoch 0', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('d1', 't-drained'));
    await store.enqueue(dispatch('d2', 't-kept'));
    await store.enqueue(dispatch('d3', 't-kept', 1001));
    await store.interrupt('t-drained', 2000); // d1 superseded, epoch 1
    await store.interrupt('t-kept', 2000); // d2, d3 superseded, epoch 1
    await store.enqueue(dispatch('d4', 't-kept', 3000)); // keeps t-kept alive at epoch 1
    await store.interrupt('t-empty', 2000); // a thread that never had a record
    expect(await store.currentDispatchEpoch('t-empty')).toBe(1);

    expect(await store.purgeTerminal(5000)).toBe(3);
    expect(await store.currentDispatchEpoch('t-drained')).toBe(0);
    expect(await store.currentDispatchEpoch('t-empty')).toBe(0);
    expect(await store.currentDispatchEpoch('t-kept')).toBe(1);
    expect((await store.loadDispatch('d4'))?.dispatch_epoch).toBe(1);

    await store.enqueue(dispatch('d5', 't-drained', 6000));
    expect((await store.loadDispatch('d5'))?.dispatch_epoch).toBe(0);
    const claimed = await store.claim('t-drained', 'c1', LEASE, 6000, 1);
    expect(claimed.map((d) => d.dispatch_id)).toEqual(['d5']);
  });

  it('a purge that deletes nothing still forgets threads interrupted while empty', async () => {
    const store = makeStore();
    await store.interrupt('t-lonely', 100);
    expect(await store.purgeTerminal(0)).toBe(0);
    expect(await store.currentDispatchEpoch('t-lonely')).toBe(0);
    expect(store.stats().threads).toBe(0);
  });

  it('a thread keeps its epoch while it still has a non-terminal or young record', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('d1', 't'));
    const [c] = await store.claim('t', 'c1', LEASE, 1000, 1);
    await store.interrupt('t', 1500); // c stays Claimed (stale)
    expect(await store.purgeTerminal(10_000)).toBe(0);
    expect(await store.currentDispatchEpoch('t')).toBe(1);
    await expect(store.ack('d1', tokenOf(c), 1600)).rejects.toMatchObject({
      kind: 'VersionConflict',
      expected: 0,
      actual: 1,
    });
    expect((await store.loadDispatch('d1'))?.status).toBe('Superseded');
    expect(await store.purgeTerminal(1600)).toBe(0); // updated_at 1600 is not < 1600
    expect(await store.currentDispatchEpoch('t')).toBe(1);
    expect(await store.purgeTerminal(1601)).toBe(1);
    expect(await store.currentDispatchEpoch('t')).toBe(0);
  });
});

describe('real concurrency (Promise.all)', () => {
  it('64 concurrent claim(limit 1) on one thread → exactly one winner', async () => {
    const store = makeStore();
    for (let i = 0; i < 5; i++) await store.enqueue(dispatch(`d${i}`, 't-c', 1000 + i));
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => store.claim('t-c', `c${i}`, LEASE, 2000, 1)),
    );
    const winners = results.filter((r) => r.length > 0);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.map((d) => d.dispatch_id)).toEqual(['d0']);
    expect(await store.countDispatchesByStatus('Claimed')).toBe(1);
  });

  it('64 concurrent claims across many threads: one winner per thread, distinct tokens', async () => {
    const store = makeStore();
    for (let t = 0; t < 8; t++) {
      for (let i = 0; i < 3; i++) await store.enqueue(dispatch(`d${t}-${i}`, `t${t}`, 1000 + i));
    }
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => store.claim(`t${i % 8}`, `c${i}`, LEASE, 2000, 1)),
    );
    const won = results.flat();
    expect(won.map((d) => d.dispatch_id).sort()).toEqual(Array.from({ length: 8 }, (_, t) => `d${t}-0`));
    expect(new Set(won.map((d) => d.claim_token)).size).toBe(8);
  });

  it('32 concurrent claimDispatch of different dispatches of one thread → exactly one', async () => {
    const store = makeStore();
    for (let i = 0; i < 32; i++) await store.enqueue(dispatch(`d${i}`, 't-cd'));
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) => store.claimDispatch(`d${i}`, 'c1', LEASE, 1000)),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await store.countDispatchesByStatus('Claimed')).toBe(1);
    expect(await store.countDispatchesByStatus('Queued')).toBe(31);
  });

  it('claim and claimDispatch racing for one dispatch → exactly one wins', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('d1', 't-race'));
    const results = await Promise.all([
      ...Array.from({ length: 16 }, () => store.claim('t-race', 'c1', LEASE, 1000, 5)),
      ...Array.from({ length: 16 }, () =>
        store.claimDispatch('d1', 'c2', LEASE, 1000).then((d) => (d ? [d] : [])),
      ),
    ]);
    expect(results.flat()).toHaveLength(1);
  });

  it('concurrent reclaims return each lease expiry exactly once', async () => {
    const store = makeStore();
    for (let t = 0; t < 10; t++) {
      await store.enqueue(dispatch(`d${t}`, `t${t}`, 1000, { max_attempts: t % 2 === 0 ? 1 : 5 }));
      await store.claim(`t${t}`, 'c1', 100, 1000, 1);
    }
    const results = await Promise.all(Array.from({ length: 8 }, () => store.reclaimExpiredLeases(2000, 3)));
    const all = results.flat();
    expect(all.map((d) => d.dispatch_id).sort()).toEqual(
      Array.from({ length: 10 }, (_, t) => `d${t}`).sort(),
    );
    expect(all.filter((d) => d.status === 'DeadLetter')).toHaveLength(5);
    expect(await store.reclaimExpiredLeases(3000, 100)).toEqual([]);
  });

  it('concurrent enqueues with one dedupe key → exactly one accepted', async () => {
    const store = makeStore();
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) =>
        store.enqueue(dispatch(`d${i}`, 't-dd', 1000, { dedupe_key: 'k' })),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') {
        expect(r.reason).toBeInstanceOf(StorageError);
        expect((r.reason as StorageError).message).toBe('already exists: dedupe_key=k');
      }
    }
  });

  it('concurrent ack and nack with the same token → exactly one succeeds', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('d1', 't-an'));
    const [c] = await store.claim('t-an', 'c1', LEASE, 1000, 1);
    const token = tokenOf(c);
    const results = await Promise.allSettled([
      store.ack('d1', token, 1100),
      store.nack('d1', token, 1200, 'x', 1100),
      store.deadLetter('d1', token, 'x', 1100),
      store.extendLease('d1', token, 100, 1100),
    ]);
    const ok = results.slice(0, 3).filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    expect((await store.loadDispatch('d1'))?.status).toBe('Acked');
    expect(results[3]).toEqual({ status: 'fulfilled', value: false });
  });

  it('concurrent interrupts get distinct epochs 1..n', async () => {
    const store = makeStore();
    const results = await Promise.all(Array.from({ length: 10 }, () => store.interrupt('t-int', 1000)));
    expect(results.map((r) => r.new_dispatch_epoch).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
  });
});

describe('indexes and bounded memory', () => {
  it('a full lifecycle at scale leaves every index empty after purge', async () => {
    const store = makeStore({ signals: true, sweepIntervalMs: 60_000 });
    const threads = 200;
    const perThread = 25;
    let now = 10_000;
    for (let i = 0; i < threads * perThread; i++) {
      await store.enqueue(dispatch(`d${i}`, `t${i % threads}`, now + i, { dedupe_key: `k${i}` }));
    }
    expect(await store.countDispatchesByStatus('Queued')).toBe(threads * perThread);
    expect(store.stats()).toMatchObject({ queuedThreads: threads, republishScheduled: threads * perThread });
    let rounds = 0;
    while ((await store.countDispatchesByStatus('Queued')) > 0) {
      now += 100;
      rounds += 1;
      for (let t = 0; t < threads; t++) {
        const [c] = await store.claim(`t${t}`, 'c1', LEASE, now + threads * perThread, 1);
        if (!c) continue;
        if (rounds % 3 === 0) await store.deadLetter(c.dispatch_id, tokenOf(c), 'boom', now);
        else await store.ack(c.dispatch_id, tokenOf(c), now);
      }
    }
    expect(rounds).toBe(perThread);
    expect(store.stats()).toMatchObject({
      leases: 0,
      queuedThreads: 0,
      republishScheduled: 0,
      terminal: 5000,
    });
    expect(await store.listTerminalDispatches(3, 0)).toHaveLength(3);
    expect(await store.purgeTerminal(now + 1)).toBe(threads * perThread);
    for (const s of RUN_DISPATCH_STATUSES) expect(await store.countDispatchesByStatus(s)).toBe(0);
    expect(store.stats()).toEqual({
      records: 0,
      threads: 0,
      queuedThreads: 0,
      leases: 0,
      terminal: 0,
      republishScheduled: 0,
      signalsPending: 0,
      signalsInFlight: 0,
      liveSubscribers: 0,
    });
    // The dedupe keys of purged records are free again.
    await store.enqueue(dispatch('again', 't0', now, { dedupe_key: 'k0' }));
  });

  it('list_dispatches merges the per-status sets in (priority, created_at, dispatch_id) order with offset', async () => {
    const store = makeStore();
    const specs: [string, number, number][] = [
      ['e', 5, 10],
      ['a', 5, 10],
      ['c', 1, 50],
      ['b', 9, 1],
      ['d', 1, 40],
    ];
    for (const [id, priority, created] of specs)
      await store.enqueue(dispatch(id, 't-m', created, { priority }));
    await store.claimDispatch('a', 'c1', LEASE, 1000); // Claimed
    await store.cancel('b', 1100); // Cancelled
    const all = await store.listDispatches('t-m', null, 10, 0);
    expect(all.map((d) => d.dispatch_id)).toEqual(['d', 'c', 'a', 'e', 'b']);
    expect(all.map((d) => d.status)).toEqual(['Queued', 'Queued', 'Claimed', 'Queued', 'Cancelled']);
    for (let offset = 0; offset < 6; offset++) {
      for (let limit = 1; limit < 6; limit++) {
        const page = await store.listDispatches(
          't-m',
          ['Cancelled', 'Queued', 'Claimed', 'Queued'],
          limit,
          offset,
        );
        expect(page.map((d) => d.dispatch_id)).toEqual(
          all.slice(offset, offset + limit).map((d) => d.dispatch_id),
        );
      }
    }
  });

  it('claim with an earlier `now` than a previous claim does not take a dispatch that is not available yet', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('z', 't-nm', 100, { priority: 0 }));
    await store.enqueue(dispatch('x', 't-nm', 100, { priority: 5, available_at: 3000 }));
    await store.enqueue(dispatch('y', 't-nm', 100, { priority: 10 }));
    const [z] = await store.claim('t-nm', 'c1', LEASE, 4000, 1); // sees x as available at 4000
    expect(z?.dispatch_id).toBe('z');
    await store.ack('z', tokenOf(z), 4000);
    const [y] = await store.claim('t-nm', 'c1', LEASE, 1000, 1); // x is not available at 1000
    expect(y?.dispatch_id).toBe('y');
    await store.ack('y', tokenOf(y), 1100);
    expect(await store.claim('t-nm', 'c1', LEASE, 2999, 1)).toEqual([]);
    expect((await store.claim('t-nm', 'c1', LEASE, 3000, 1)).map((d) => d.dispatch_id)).toEqual(['x']);
  });

  it('reclaim takes the oldest leases first and honours the limit', async () => {
    const store = makeStore();
    for (const [t, lease] of [
      ['t1', 300],
      ['t2', 100],
      ['t3', 200],
    ] as const) {
      await store.enqueue(dispatch(`d-${t}`, t));
      await store.claim(t, 'c1', lease, 1000, 1);
    }
    expect((await store.reclaimExpiredLeases(5000, 2)).map((d) => d.dispatch_id)).toEqual(['d-t2', 'd-t3']);
    expect((await store.reclaimExpiredLeases(5000, 2)).map((d) => d.dispatch_id)).toEqual(['d-t1']);
  });
});

describe('edge cases and lifecycle', () => {
  it('a dispatch enqueued with attempt_count == max_attempts dead-letters on its next failure and stays valid', async () => {
    const store = makeStore();
    await store.enqueue(dispatch('d-full', 't-full', 1000, { attempt_count: 2, max_attempts: 2 }));
    const [c] = await store.claim('t-full', 'c1', LEASE, 1000, 1);
    await store.nack('d-full', tokenOf(c), 2000, 'again', 1500);
    const d = await store.loadDispatch('d-full');
    expect(d).toMatchObject({ status: 'DeadLetter', attempt_count: 2, last_error: 'again' });

    await store.enqueue(dispatch('d-full2', 't-full2', 1000, { attempt_count: 1, max_attempts: 1 }));
    await store.claim('t-full2', 'c1', 10, 1000, 1);
    const [r] = await store.reclaimExpiredLeases(2000, 10);
    expect(r).toMatchObject({
      status: 'DeadLetter',
      attempt_count: 1,
      last_error: 'lease expired; max attempts reached',
    });
  });

  it('errors: NotFound(id) for missing, VersionConflict{0,1} for wrong token, {epoch,current} for stale', async () => {
    const store = makeStore();
    const missing = await store.ack('nope', 'tok', 1).catch((e: unknown) => e as StorageError);
    expect(missing).toMatchObject({ kind: 'NotFound', detail: 'nope', message: 'not found: nope' });
    await store.enqueue(dispatch('d1', 't-e'));
    const [c] = await store.claim('t-e', 'c1', LEASE, 1000, 1);
    const wrong = await store.nack('d1', 'other', 1, 'x', 1100).catch((e: unknown) => e as StorageError);
    expect(wrong).toMatchObject({ kind: 'VersionConflict', expected: 0, actual: 1 });
    await store.interrupt('t-e', 1200);
    await store.interrupt('t-e', 1300);
    const stale = await store
      .recordRunResult(
        'd1',
        tokenOf(c),
        { run_id: 'run-d1', dispatch_instance_id: 'i', status: 'done' },
        1400,
      )
      .catch((e: unknown) => e as StorageError);
    expect(stale).toMatchObject({ kind: 'VersionConflict', expected: 0, actual: 2 });
    expect(await store.loadDispatch('d1')).toMatchObject({
      status: 'Superseded',
      dispatch_epoch: 2,
      last_error: 'claimed dispatch superseded before run result',
      completed_at: 1400,
    });
  });

  it('plantRecord stores a record verbatim (stale-epoch Queued) and claim supersedes it', async () => {
    const store = makeStore();
    await store.interrupt('t-plant', 500);
    await store.plantRecord(dispatch('d-stale', 't-plant', 100, { dispatch_epoch: 0 }));
    await expect(store.plantRecord(dispatch('d-stale', 't-plant'))).rejects.toMatchObject({
      kind: 'AlreadyExists',
    });
    expect(await store.queuedThreadIds()).toEqual(['t-plant']);
    expect(await store.claim('t-plant', 'c1', LEASE, 2000, 0)).toEqual([]); // supersedes even with limit 0
    expect(await store.loadDispatch('d-stale')).toMatchObject({
      status: 'Superseded',
      dispatch_epoch: 1,
      last_error: 'queued dispatch superseded by newer dispatch epoch',
      completed_at: 2000,
    });
    await expect(store.plantRecord({ ...dispatch('d-bad', 't'), status: 'Claimed' })).rejects.toMatchObject({
      kind: 'Validation',
    });
  });

  it('invalid options are Validation errors naming the option', () => {
    expect(() => new MemoryMailboxStore({ sweepIntervalMs: 0 })).toThrow(/sweepIntervalMs/);
    expect(() => new MemoryMailboxStore({ liveAckTimeoutMs: 1.5 })).toThrow(/liveAckTimeoutMs/);
    expect(() => new MemoryMailboxStore({ signals: 'yes' as unknown as boolean })).toThrow(/signals/);
  });

  it('after close every method throws Io "store is closed"; close is idempotent', async () => {
    const store = makeStore({ signals: true });
    await store.enqueue(dispatch('d1', 't'));
    await store.close();
    await store.close();
    const calls: (() => Promise<unknown>)[] = [
      () => store.enqueue(dispatch('d2', 't')),
      () => store.claim('t', 'c', LEASE, 1000, 1),
      () => store.claimDispatch('d1', 'c', LEASE, 1000),
      () => store.ack('d1', 'tok', 1),
      () => store.cancel('d1', 1),
      () => store.extendLease('d1', 'tok', 1, 1),
      () => store.interrupt('t', 1),
      () => store.currentDispatchEpoch('t'),
      () => store.loadDispatch('d1'),
      () => store.listDispatches('t', null, 10, 0),
      () => store.countDispatchesByStatus('Queued'),
      () => store.listTerminalDispatches(10, 0),
      () => store.reclaimExpiredLeases(1, 10),
      () => store.purgeTerminal(1),
      () => store.queuedThreadIds(),
      () => store.pullDispatchSignals(1, 1),
      () => store.openLiveChannel('t'),
    ];
    for (const call of calls) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).message).toBe('io error: store is closed');
    }
    expect(store.supportsDispatchSignals()).toBe(true);
  });
});

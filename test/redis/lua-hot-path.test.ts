/**
 * The Lua hot path's shortcuts must not show: status counters summed per call and applied when it ends,
 * the thread epoch read once per call, the integer fields of a record checked with one pattern (and
 * field by field when it fails).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RunDispatch, RunDispatchStatus } from '../../src/contract/types.js';
import { dispatch, doneResult, nextClaim, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-lua-hot-path');
});
afterEach(async () => {
  await fx.cleanup();
});

const STATUSES: RunDispatchStatus[] = ['Queued', 'Claimed', 'Acked', 'Cancelled', 'Superseded', 'DeadLetter'];

/** Complete `d` (claimed with token, run id as stored) and chain the next claim of its thread. */
const chain = (d: RunDispatch, now: number): ReturnType<RedisFixture['store']['completeAndClaimNext']> =>
  fx.store.completeAndClaimNext(
    d.dispatch_id,
    d.claim_token!,
    doneResult(d.run_id),
    now,
    nextClaim(d.thread_id, 'c1', 30_000),
  );

/** The raw counter hash next to the statuses of the records themselves (every counter, 0 when none). */
async function countersAndRecords(
  ids: string[],
): Promise<{ counters: Record<string, number>; records: Record<string, number> }> {
  const raw = await fx.raw.hgetall(fx.store.keys.counts);
  const counters: Record<string, number> = {};
  const records: Record<string, number> = {};
  for (const s of STATUSES) {
    counters[s] = Number(raw[s] ?? 0);
    records[s] = 0;
  }
  for (const id of ids) {
    const r = await fx.store.loadDispatch(id);
    if (r) records[r.status] = (records[r.status] ?? 0) + 1;
  }
  return { counters, records };
}

async function expectSerialization(call: () => Promise<unknown>, mentions: string): Promise<void> {
  let caught: unknown;
  try {
    caught = new Error(`expected Serialization, got ${JSON.stringify(await call())}`);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StorageError);
  expect((caught as StorageError).kind, (caught as StorageError).message).toBe('Serialization');
  expect((caught as StorageError).message).toContain(mentions);
}

describe('status counters summed per call', () => {
  it('a chain of completions keeps every counter equal to the records, step by step', async () => {
    const ids = ['d1', 'd2', 'd3', 'd4'];
    for (const [i, id] of ids.entries()) await fx.store.enqueue(dispatch(id, 't1', 1000 + i));
    let cur = await fx.store.claimAndStart('t1', 'c1', 30_000, 2000, 'inst');
    let now = 2000;
    while (cur) {
      const res = await chain(cur, ++now);
      const { counters, records } = await countersAndRecords(ids);
      expect(counters).toEqual(records);
      cur = res.next;
    }
    const { counters } = await countersAndRecords(ids);
    expect(counters).toMatchObject({ Queued: 0, Claimed: 0, Acked: 4 });
  });

  it('a chained claim whose Claimed sum is 0 still creates a missing Claimed field, as -1 then +1 did', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't1', 1001));
    const first = await fx.store.claimAndStart('t1', 'c1', 30_000, 2000, 'inst');
    await fx.raw.hdel(fx.store.keys.counts, 'Claimed');
    const res = await chain(first!, 2001);
    expect(res.next?.dispatch_id).toBe('d2');
    expect(await fx.raw.hget(fx.store.keys.counts, 'Claimed')).toBe('0');
  });

  it('a stale claim superseded before VersionConflict moves its counters too', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    const [claimed] = await fx.store.claim('t1', 'c1', 30_000, 2000, 1);
    await fx.store.interrupt('t1', 2001);
    let caught: unknown;
    try {
      await fx.store.ack('d1', claimed!.claim_token!, 2002);
    } catch (err) {
      caught = err;
    }
    expect((caught as StorageError).kind).toBe('VersionConflict');
    expect((await fx.store.loadDispatch('d1'))?.status).toBe('Superseded');
    const { counters, records } = await countersAndRecords(['d1']);
    expect(counters).toEqual(records);
    expect(counters).toMatchObject({ Claimed: 0, Superseded: 1 });
  });

  it('a Redis error after a committed completion (a key of the wrong type) leaves the counters matching', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't1', 1001));
    const first = await fx.store.claimAndStart('t1', 'c1', 30_000, 2000, 'inst');
    // The chained claim reads the thread's stale-Queued set after the completion wrote: WRONGTYPE there.
    await fx.raw.set(fx.store.keys.staleQueued('t1'), 'not a set');
    await expect(chain(first!, 2001)).rejects.toThrow(/WRONGTYPE/);
    await fx.raw.del(fx.store.keys.staleQueued('t1'));
    expect((await fx.store.loadDispatch('d1'))?.status).toBe('Acked');
    const { counters, records } = await countersAndRecords(['d1', 'd2']);
    expect(counters).toEqual(records);
  });

  it('interrupt then a claim in later calls read the new epoch (nothing remembered across calls)', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    const first = await fx.store.claimAndStart('t1', 'c1', 30_000, 2000, 'inst');
    await fx.store.interrupt('t1', 2001);
    await fx.store.enqueue(dispatch('d2', 't1', 2002));
    // The completion's guard reads epoch 1 > the claim's 0: superseded, VersionConflict, nothing claimed.
    await expect(chain(first!, 2003)).rejects.toMatchObject({ kind: 'VersionConflict' });
    const res = await fx.store.claimAndStart('t1', 'c1', 30_000, 2004, 'inst');
    expect(res?.dispatch_id).toBe('d2');
    expect(res?.dispatch_epoch).toBe(1);
  });
});

describe('integer fields checked with one pattern, then field by field', () => {
  async function corruptThenCancel(edits: Record<string, string>, mentions: string): Promise<void> {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.raw.hset(fx.store.keys.record('d1'), edits);
    const before = await fx.raw.hgetall(fx.store.keys.record('d1'));
    await expectSerialization(() => fx.store.cancel('d1', 5000), mentions);
    expect(await fx.raw.hgetall(fx.store.keys.record('d1'))).toEqual(before);
  }

  it('16 digits up to the largest safe integer pass (the pattern path declines them, the field check accepts)', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000, { available_at: Number.MAX_SAFE_INTEGER }));
    const claimed = await fx.store.claimDispatch('d1', 'c1', 30_000, 2000);
    expect(claimed?.available_at).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('16 digits above it fail, naming the field', async () => {
    await corruptThenCancel(
      { available_at: '9007199254740992' },
      'available_at is missing or not a non-negative safe integer',
    );
  });

  it('a space inside a value fails, naming the field', async () => {
    await corruptThenCancel(
      { created_at: '10 00' },
      'created_at is missing or not a non-negative safe integer',
    );
  });

  it('an empty value fails, naming the field', async () => {
    await corruptThenCancel(
      { attempt_count: '' },
      'attempt_count is missing or not a non-negative safe integer',
    );
  });

  it('two bad fields: the first in check order is named', async () => {
    await corruptThenCancel({ updated_at: 'x', dispatch_epoch: '-1' }, 'dispatch_epoch is missing');
  });

  it('a bad optional field (lease_until on a Claimed record) is named', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.claim('t1', 'c1', 30_000, 2000, 1);
    await fx.raw.hset(fx.store.keys.record('d1'), 'lease_until', '12a');
    await expectSerialization(
      () => fx.store.cancel('d1', 5000),
      'lease_until is missing or not a non-negative safe integer',
    );
  });

  for (const [priority, ok] of [
    ['255', true],
    ['256', false],
    ['99', true],
    ['0256', false],
    ['1000', false],
  ] as const) {
    it(`priority ${priority}: ${ok ? 'accepted' : 'Serialization'}`, async () => {
      await fx.store.enqueue(dispatch('d1', 't1', 1000));
      await fx.raw.hset(fx.store.keys.record('d1'), 'priority', priority);
      if (ok) {
        expect((await fx.store.cancel('d1', 5000))?.status).toBe('Cancelled');
      } else {
        await expectSerialization(() => fx.store.cancel('d1', 5000), 'priority must be in 0..=255');
      }
    });
  }
});

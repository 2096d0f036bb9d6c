/**
 * Corrupt data written by hand (redis-cli HSET on a record, an index or a counter) must answer
 * `Serialization` naming the dispatch — never a crash, a wrong answer or a half-applied write.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { dispatch, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-corrupt');
});
afterEach(async () => {
  await fx.cleanup();
});

async function expectSerialization(call: () => Promise<unknown>, mentions: string): Promise<void> {
  let caught: unknown;
  try {
    const value = await call();
    caught = new Error(`expected Serialization, got ${JSON.stringify(value)}`);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StorageError);
  const se = caught as StorageError;
  expect(se.kind, se.message).toBe('Serialization');
  expect(se.message).toContain(mentions);
}

/** The raw hash of a record, to prove a failed call wrote nothing. */
const rawRecord = (id: string): Promise<Record<string, string>> => fx.raw.hgetall(fx.store.keys.record(id));

describe('corrupt Queued record (bad status / non-numeric timestamp)', () => {
  for (const [field, value] of [
    ['status', 'Bogus'],
    ['status', 'queued'],
    ['created_at', 'yesterday'],
    ['available_at', '-5'],
    ['priority', '300'],
    ['attempt_count', '1.5'],
  ] as const) {
    it(`${field}=${value}: every method that reads it answers Serialization naming the dispatch`, async () => {
      await fx.store.enqueue(dispatch('d-bad', 't-bad', 1000));
      await fx.store.enqueue(dispatch('d-ok', 't-ok', 1000));
      await fx.raw.hset(fx.store.keys.record('d-bad'), field, value);
      const before = await rawRecord('d-bad');
      const epochBefore = await fx.store.currentDispatchEpoch('t-bad');

      await expectSerialization(() => fx.store.loadDispatch('d-bad'), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.listDispatches('t-bad', null, 10, 0), "dispatch 'd-bad'");
      await expectSerialization(
        () => fx.store.listDispatches('t-bad', ['Queued'], 10, 0),
        "dispatch 'd-bad'",
      );
      await expectSerialization(() => fx.store.claim('t-bad', 'c1', 1000, 5000, 1), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.claimDispatch('d-bad', 'c1', 1000, 5000), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.cancel('d-bad', 5000), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.ack('d-bad', 'tok', 5000), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.nack('d-bad', 'tok', 6000, 'e', 5000), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.extendLease('d-bad', 'tok', 100, 5000), "dispatch 'd-bad'");
      await expectSerialization(
        () => fx.store.supersedeClaimed('d-bad', 'tok', 5000, 'r'),
        "dispatch 'd-bad'",
      );
      await expectSerialization(() => fx.store.interruptDetailed('t-bad', 5000), "dispatch 'd-bad'");
      await expectSerialization(() => fx.store.loadDispatches(['d-ok', 'd-bad']), "dispatch 'd-bad'");

      // Nothing was written: the record, the epoch and the healthy neighbour are untouched.
      expect(await rawRecord('d-bad')).toEqual(before);
      expect(await fx.store.currentDispatchEpoch('t-bad')).toBe(epochBefore);
      expect((await fx.store.loadDispatch('d-ok'))?.status).toBe('Queued');
      expect(await fx.store.claim('t-ok', 'c1', 1000, 5000, 1)).toHaveLength(1);
    });
  }
});

describe('corrupt Claimed and terminal records', () => {
  it('bad termination JSON or lease_until on a Claimed record', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    const [claimed] = await fx.store.claim('t1', 'c1', 100, 1000, 1);
    const token = claimed?.claim_token as string;
    await fx.raw.hset(fx.store.keys.record('d1'), 'termination', '{"type":');
    await expectSerialization(() => fx.store.loadDispatch('d1'), "dispatch 'd1'");
    await expectSerialization(() => fx.store.ack('d1', token, 2000), "dispatch 'd1'");
    await expectSerialization(() => fx.store.recordDispatchStart('d1', token, 'i', 2000), "dispatch 'd1'");
    await expectSerialization(() => fx.store.reclaimExpiredLeases(5000, 10), "dispatch 'd1'");
    await fx.raw.hdel(fx.store.keys.record('d1'), 'termination');
    await fx.raw.hset(fx.store.keys.record('d1'), 'lease_until', 'soon');
    await expectSerialization(() => fx.store.reclaimExpiredLeases(5000, 10), "dispatch 'd1'");
    await expectSerialization(() => fx.store.interruptDetailed('t1', 5000), "dispatch 'd1'");
    await fx.raw.hset(fx.store.keys.record('d1'), 'lease_until', '1100');
    // Repaired by hand: everything works again.
    await fx.store.ack('d1', token, 2000);
    expect((await fx.store.loadDispatch('d1'))?.status).toBe('Acked');
  });

  it('a Claimed record without claim_token, or with an unknown run_status', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    const [claimed] = await fx.store.claim('t1', 'c1', 100, 1000, 1);
    await fx.raw.hset(fx.store.keys.record('d1'), 'run_status', 'finished');
    await expectSerialization(() => fx.store.loadDispatch('d1'), "dispatch 'd1'");
    await expectSerialization(
      () => fx.store.extendLease('d1', claimed?.claim_token as string, 10, 2000),
      "dispatch 'd1'",
    );
    await fx.raw.hdel(fx.store.keys.record('d1'), 'run_status', 'claim_token');
    await expectSerialization(() => fx.store.loadDispatch('d1'), 'claim_token');
  });

  it('a missing required field, or a dispatch_id that does not match its key', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.raw.hdel(fx.store.keys.record('d1'), 'run_id');
    await expectSerialization(() => fx.store.loadDispatch('d1'), "dispatch 'd1'");
    await expectSerialization(() => fx.store.claim('t1', 'c', 100, 1000, 1), "dispatch 'd1'");
    await fx.raw.hset(fx.store.keys.record('d1'), 'run_id', 'r', 'dispatch_id', 'other');
    await expectSerialization(() => fx.store.loadDispatch('d1'), "dispatch 'd1'");
    await expectSerialization(() => fx.store.cancel('d1', 2000), "dispatch 'd1'");
  });

  it('terminal records: listTerminalDispatches and purgeTerminal', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.cancel('d1', 1500);
    await fx.raw.hset(fx.store.keys.record('d1'), 'updated_at', 'later');
    await expectSerialization(() => fx.store.listTerminalDispatches(10, 0), "dispatch 'd1'");
    await expectSerialization(() => fx.store.purgeTerminal(10_000), "dispatch 'd1'");
    expect(await fx.raw.exists(fx.store.keys.record('d1'))).toBe(1);
    // A valid record in the wrong index is corruption too, not a silent wrong answer.
    await fx.raw.hset(fx.store.keys.record('d1'), 'updated_at', '1500', 'status', 'Queued');
    await fx.raw.hdel(fx.store.keys.record('d1'), 'completed_at');
    await expectSerialization(() => fx.store.listTerminalDispatches(10, 0), "dispatch 'd1'");
    await expectSerialization(() => fx.store.purgeTerminal(10_000), "dispatch 'd1'");
    await expectSerialization(() => fx.store.listDispatches('t1', ['Cancelled'], 10, 0), "dispatch 'd1'");
  });
});

describe('corrupt indexes, counters and thread state', () => {
  it('an index entry whose record was deleted', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.raw.del(fx.store.keys.record('d1'));
    expect(await fx.store.loadDispatch('d1')).toBeNull();
    await expectSerialization(() => fx.store.listDispatches('t1', null, 10, 0), "dispatch 'd1'");
    await expectSerialization(() => fx.store.claim('t1', 'c', 100, 1000, 1), "dispatch 'd1'");
    await expectSerialization(() => fx.store.interrupt('t1', 2000), "dispatch 'd1'");
  });

  it('a non-numeric counter or epoch', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.raw.hset(fx.store.keys.counts, 'Queued', 'many');
    await expectSerialization(() => fx.store.countDispatchesByStatus('Queued'), 'Queued');
    await fx.raw.hset(fx.store.keys.thread('t1'), 'epoch', 'x');
    await expectSerialization(() => fx.store.currentDispatchEpoch('t1'), "thread 't1'");
    await expectSerialization(() => fx.store.enqueue(dispatch('d2', 't1', 1000)), "thread 't1'");
    await expectSerialization(() => fx.store.claim('t1', 'c', 100, 1000, 1), "thread 't1'");
    await expectSerialization(() => fx.store.interrupt('t1', 1000), "thread 't1'");
    expect(await fx.store.loadDispatch('d2')).toBeNull();
  });
});

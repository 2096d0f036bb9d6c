/**
 * Redis does not roll a script back when it raises. Every script therefore reads and checks everything it
 * needs before its first write: with any key it reads corrupted by hand (a status counter, a thread's epoch
 * or record count, a record, an index entry without its record), a call answers `Serialization` and the
 * namespace is exactly as it was before, byte for byte.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { dispatch, doneResult, namespaceKeys, nextClaim, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-no-half', { signals: 'redis-streams' });
});
afterEach(async () => {
  await fx.cleanup();
});

/** Type and full content of every key of the namespace. */
async function snapshot(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of await namespaceKeys(fx.raw, fx.store.keys.pattern)) {
    const type = await fx.raw.type(key);
    if (type === 'hash') out[key] = await fx.raw.hgetall(key);
    else if (type === 'zset') out[key] = await fx.raw.zrange(key, '0', '-1', 'WITHSCORES');
    else if (type === 'set') out[key] = (await fx.raw.smembers(key)).sort();
    else if (type === 'stream') out[key] = await fx.raw.xrange(key, '-', '+');
    else out[key] = [type, await fx.raw.dump(key)];
  }
  return out;
}

async function expectNoChange(call: () => Promise<unknown>): Promise<void> {
  const before = await snapshot();
  let caught: unknown = null;
  try {
    await call();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'the call must fail').toBeInstanceOf(StorageError);
  expect((caught as StorageError).kind, (caught as StorageError).message).toBe('Serialization');
  expect(await snapshot()).toEqual(before);
}

const next = nextClaim('t1', 'c');

/** Two Queued dispatches on t1 (d1 claimed and started by c), one on t2. */
async function seed(): Promise<string> {
  await fx.store.enqueue(dispatch('d1', 't1', 1000));
  await fx.store.enqueue(dispatch('d2', 't1', 1001));
  await fx.store.enqueue(dispatch('d3', 't2', 1002));
  const [claimed] = await fx.store.claim('t1', 'c', 1000, 2000, 1);
  const token = claimed?.claim_token as string;
  await fx.store.recordDispatchStart('d1', token, 'inst', 2000);
  return token;
}

/** Every write that moves a dispatch between statuses, against the seeded state. */
function writes(token: string): [string, () => Promise<unknown>][] {
  return [
    ['enqueue', () => fx.store.enqueue(dispatch('d9', 't1', 1003))],
    ['enqueue on t2', () => fx.store.enqueue(dispatch('d8', 't2', 1004))],
    ['claim', () => fx.store.claim('t2', 'c', 1000, 3000, 2)],
    ['claimDispatch', () => fx.store.claimDispatch('d3', 'c', 1000, 3000)],
    ['claimAndStart', () => fx.store.claimAndStart('t2', 'c', 1000, 3000, 'inst')],
    ['claimDispatchAndStart', () => fx.store.claimDispatchAndStart('d3', 'c', 1000, 3000, 'inst')],
    ['ack', () => fx.store.ack('d1', token, 3000)],
    ['completeAndAck', () => fx.store.completeAndAck('d1', token, doneResult('run-d1'), 3000)],
    [
      'completeAndClaimNext',
      () => fx.store.completeAndClaimNext('d1', token, doneResult('run-d1'), 3000, next),
    ],
    ['nack', () => fx.store.nack('d1', token, 4000, 'boom', 3000)],
    ['deadLetter', () => fx.store.deadLetter('d1', token, 'boom', 3000)],
    ['cancel', () => fx.store.cancel('d3', 3000)],
    ['interrupt', () => fx.store.interrupt('t2', 3000)],
    ['reclaimExpiredLeases', () => fx.store.reclaimExpiredLeases(10_000, 10)],
  ];
}

describe('no half-written state when a key a script reads is corrupt', () => {
  it('a status counter that is not an integer: every transition fails before writing', async () => {
    const token = await seed();
    await fx.raw.hset(fx.store.keys.counts, 'Acked', 'many');
    await fx.raw.hset(fx.store.keys.counts, 'Queued', '007');
    for (const [name, call] of writes(token)) {
      await expectNoChange(call).catch((err: unknown) => {
        throw new Error(`${name}: ${String(err)}`);
      });
    }
  });

  it("a thread's record count that is not an integer: enqueue and purge fail before writing", async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't2', 1000));
    await fx.store.cancel('d1', 2000);
    await fx.store.cancel('d2', 2000);
    await fx.raw.hset(fx.store.keys.thread('t2'), 'n', 'many');
    await expectNoChange(() => fx.store.enqueue(dispatch('d3', 't2', 1001)));
    // d1's purge would come first and succeed on its own: the batch still writes nothing.
    await expectNoChange(() => fx.store.purgeTerminal(10_000));
  });

  it("a thread's epoch that is not an integer: the lease reclaim of an earlier thread is not applied", async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't2', 1000));
    await fx.store.claim('t1', 'c', 100, 2000, 1);
    await fx.store.claim('t2', 'c', 200, 2000, 1);
    await fx.raw.hset(fx.store.keys.thread('t2'), 'epoch', 'x');
    await expectNoChange(() => fx.store.reclaimExpiredLeases(10_000, 10));
  });

  it('a corrupt record behind a stale or early ready entry: claim supersedes and demotes nothing', async () => {
    // d1 stale (older epoch, written out of band), d2 corrupt: claim(limit 2) must not supersede d1.
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't1', 1001));
    await fx.raw.hset(fx.store.keys.thread('t1'), 'epoch', '5');
    await fx.raw.hset(fx.store.keys.record('d2'), 'created_at', 'yesterday');
    await expectNoChange(() => fx.store.claim('t1', 'c', 1000, 3000, 2));
    await expectNoChange(() => fx.store.claimAndStart('t1', 'c', 1000, 3000, 'inst'));
  });

  it('an index entry without its record: claim, interrupt and reclaim fail before writing', async () => {
    await fx.store.enqueue(dispatch('d1', 't1', 1000));
    await fx.store.enqueue(dispatch('d2', 't1', 1001));
    await fx.store.enqueue(dispatch('d3', 't2', 1000));
    await fx.store.claim('t2', 'c', 100, 2000, 1);
    await fx.raw.del(fx.store.keys.record('d2'));
    await expectNoChange(() => fx.store.claim('t1', 'c', 1000, 3000, 2));
    await expectNoChange(() => fx.store.interrupt('t1', 3000));
    await fx.raw.zadd(fx.store.keys.leases, '50', 'ghost');
    await expectNoChange(() => fx.store.reclaimExpiredLeases(10_000, 10));
  });
});

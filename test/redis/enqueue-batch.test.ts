/**
 * Enqueues made in one turn of the event loop share `enqueue_many` calls (ENQUEUE_BATCH per call); each must
 * answer exactly as if it had been made alone: the memory store, fed the same calls one by one, is the
 * reference.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { ENQUEUE_BATCH } from '../../src/redis/store.js';
import { dispatch, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-enqueue-batch');
});
afterEach(async () => {
  await fx.cleanup();
});

/** Outcome of a call as comparable data: 'ok' or the error's kind and message. */
async function outcome(call: Promise<void>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (err) {
    return err instanceof StorageError ? `${err.kind}: ${err.message}` : `other: ${String(err)}`;
  }
}

/** Every dispatch of the threads, in list order, and the status counts. */
async function state(store: MailboxStore, threads: readonly string[]): Promise<unknown> {
  const lists: RunDispatch[][] = [];
  for (const t of threads) lists.push(await store.listDispatches(t, null, 1000, 0));
  const counts: number[] = [];
  for (const s of RUN_DISPATCH_STATUSES) counts.push(await store.countDispatchesByStatus(s));
  return { lists, counts };
}

describe('enqueues of one turn', () => {
  it('answer one by one as the memory store does, across several script calls', async () => {
    const threads = ['t-a', 't-b', 't-c'];
    const calls: RunDispatch[] = [];
    for (let i = 0; i < ENQUEUE_BATCH * 2 + 7; i++) {
      const t = threads[i % threads.length] as string;
      calls.push(dispatch(`d-${i}`, t, 1000 + i, i % 5 === 0 ? { dedupe_key: `k-${i % 15}` } : {}));
    }
    // The same id twice in one turn, and one already stored: AlreadyExists(<id>) for the later ones.
    calls.push(dispatch('d-3', 't-a', 5000));
    calls.push(dispatch('d-early', 't-b', 900));
    // A dedupe key held by a Queued dispatch of the same turn: AlreadyExists(dedupe_key=...).
    calls.push(dispatch('d-dup-key', 't-a', 6000, { dedupe_key: 'k-0' }));
    // Another thread's dedupe keys are its own.
    calls.push(dispatch('d-other-thread', 't-z', 6000, { dedupe_key: 'k-0' }));

    const memory = new MemoryMailboxStore();
    await memory.enqueue(dispatch('d-early', 't-b', 900));
    await fx.store.enqueue(dispatch('d-early', 't-b', 900));
    const expected: string[] = [];
    for (const d of calls) expected.push(await outcome(memory.enqueue(d)));

    const got = await Promise.all(calls.map((d) => outcome(fx.store.enqueue(d))));
    expect(got).toEqual(expected);
    expect(got.filter((o) => o !== 'ok').length).toBeGreaterThanOrEqual(3);
    const all = [...threads, 't-z'];
    expect(await state(fx.store, all)).toEqual(await state(memory, all));
  });

  it('a Redis error fails only the enqueue that met it', async () => {
    // The thread hash of t-broken is a string: the enqueue reading it meets WRONGTYPE.
    await fx.raw.set(fx.store.keys.thread('t-broken'), 'not a hash');
    const calls = [
      dispatch('d-1', 't-ok', 1000),
      dispatch('d-2', 't-broken', 1000),
      dispatch('d-3', 't-ok', 1001),
    ];
    const got = await Promise.all(calls.map((d) => outcome(fx.store.enqueue(d))));
    expect(got[0]).toBe('ok');
    expect(got[1]).toMatch(/^Io: .*WRONGTYPE/);
    expect(got[2]).toBe('ok');
    expect((await fx.store.listDispatches('t-ok', null, 10, 0)).map((d) => d.dispatch_id)).toEqual([
      'd-1',
      'd-3',
    ]);
    expect(await fx.raw.exists(fx.store.keys.record('d-2'))).toBe(0);
    expect(await fx.store.countDispatchesByStatus('Queued')).toBe(2);
  });

  it('an invalid dispatch is refused before it joins a batch; the others go on', async () => {
    const bad = { ...dispatch('d-bad', 't-1', 1000), priority: 999 };
    const got = await Promise.all([
      outcome(fx.store.enqueue(dispatch('d-1', 't-1', 1000))),
      outcome(fx.store.enqueue(bad)),
      outcome(fx.store.enqueue(dispatch('d-2', 't-1', 1001))),
    ]);
    expect(got[0]).toBe('ok');
    expect(got[1]).toMatch(/^Validation: /);
    expect(got[2]).toBe('ok');
  });
});

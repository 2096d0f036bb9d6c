/**
 * Chained completions (`completeAndClaimNext`) made in one iteration of the event loop share
 * `complete_and_claim_next_many` calls (COMPLETE_BATCH per call); each must answer exactly as if it had been
 * made alone: the memory store, fed the same calls one by one, is the reference.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { FusedMailboxStore } from '../../src/contract/fused.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { COMPLETE_BATCH } from '../../src/redis/store.js';
import { dispatch, doneResult, nextClaim, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-complete-batch');
});
afterEach(async () => {
  await fx.cleanup();
});

/** A call's answer as comparable data (claim tokens differ between stores and are left out). */
async function outcome(
  call: Promise<{ next: RunDispatch | null; claimError?: StorageError }>,
): Promise<string> {
  try {
    const { next, claimError } = await call;
    if (claimError) return `claim error ${claimError.kind}`;
    return next === null ? 'none' : `next ${next.dispatch_id} ${next.status} ${next.run_status}`;
  } catch (err) {
    return err instanceof StorageError ? `${err.kind}: ${err.message}` : `other: ${String(err)}`;
  }
}

function withoutTokens(d: RunDispatch): Omit<RunDispatch, 'claim_token'> {
  const { claim_token: _token, ...rest } = d;
  return rest;
}

async function state(store: FusedMailboxStore, threads: readonly string[]): Promise<unknown> {
  const lists: unknown[] = [];
  for (const t of threads) lists.push((await store.listDispatches(t, null, 100, 0)).map(withoutTokens));
  const counts: number[] = [];
  for (const s of RUN_DISPATCH_STATUSES) counts.push(await store.countDispatchesByStatus(s));
  return { lists, counts };
}

describe('chained completions of one iteration', () => {
  it('answer one by one as the memory store does, across several script calls', async () => {
    const threads = Array.from({ length: COMPLETE_BATCH * 2 + 5 }, (_, i) => `t-${i}`);
    const memory = new MemoryMailboxStore();
    const stores: FusedMailboxStore[] = [memory, fx.store];
    const running = new Map<FusedMailboxStore, RunDispatch[]>();
    for (const store of stores) {
      const started: RunDispatch[] = [];
      for (const [i, t] of threads.entries()) {
        await store.enqueue(dispatch(`${t}-a`, t, 1000 + i));
        // Every third thread has nothing after its running dispatch: its chained claim finds nothing.
        if (i % 3 !== 0) await store.enqueue(dispatch(`${t}-b`, t, 1100 + i));
        const run = await store.claimAndStart(t, 'c1', 30_000, 2000, 'inst');
        started.push(run as RunDispatch);
      }
      running.set(store, started);
    }
    const completeAll = (store: FusedMailboxStore): Promise<string>[] =>
      (running.get(store) as RunDispatch[]).map((d, i) => {
        // A wrong token (VersionConflict) and a result for another run (Validation): nothing written.
        const token = i === 4 ? 'not-the-token' : (d.claim_token as string);
        const result = doneResult(i === 7 ? 'another-run' : d.run_id);
        // One completion chains onto another thread, which is running: nothing claimed there.
        const next = nextClaim(i === 9 ? (threads[10] as string) : d.thread_id);
        return outcome(store.completeAndClaimNext(d.dispatch_id, token, result, 3000 + i, next));
      });
    const expected: string[] = [];
    for (const call of completeAll(memory)) expected.push(await call);
    const got = await Promise.all(completeAll(fx.store));
    expect(got).toEqual(expected);
    expect(got.filter((o) => o.startsWith('next')).length).toBeGreaterThan(COMPLETE_BATCH);
    expect(got.filter((o) => o.startsWith('VersionConflict') || o.startsWith('Validation'))).toHaveLength(2);
    expect(await state(fx.store, threads)).toEqual(await state(memory, threads));
  });

  it('a claim error or a Redis error stays with its own completion', async () => {
    const threads = ['t-ok', 't-corrupt', 't-wrongtype', 't-ok2'];
    const started: RunDispatch[] = [];
    for (const t of threads) {
      await fx.store.enqueue(dispatch(`${t}-a`, t, 1000));
      await fx.store.enqueue(dispatch(`${t}-b`, t, 1001));
      started.push((await fx.store.claimAndStart(t, 'c1', 30_000, 2000, 'inst')) as RunDispatch);
    }
    // The next dispatch of t-corrupt has a bad status: its chained claim fails (Serialization), the
    // completion stands. The stale-Queued set of t-wrongtype is a string: WRONGTYPE after the completion.
    await fx.raw.hset(fx.store.keys.record('t-corrupt-b'), 'created_at', 'yesterday');
    await fx.raw.set(fx.store.keys.staleQueued('t-wrongtype'), 'not a set');
    const got = await Promise.all(
      started.map((d, i) =>
        outcome(
          fx.store.completeAndClaimNext(
            d.dispatch_id,
            d.claim_token as string,
            doneResult(d.run_id),
            3000 + i,
            nextClaim(d.thread_id),
          ),
        ),
      ),
    );
    expect(got[0]).toBe('next t-ok-b Claimed running');
    expect(got[1]).toBe('claim error Serialization');
    expect(got[2]).toMatch(/^Io: .*WRONGTYPE/);
    expect(got[3]).toBe('next t-ok2-b Claimed running');
    await fx.raw.del(fx.store.keys.staleQueued('t-wrongtype'));
    for (const t of threads) expect((await fx.store.loadDispatch(`${t}-a`))?.status).toBe('Acked');
    // The counters still match the records.
    for (const s of RUN_DISPATCH_STATUSES) {
      let records = 0;
      for (const t of threads) {
        records += (await fx.store.listDispatches(t, [s], 100, 0).catch(() => [])).length;
      }
      if (s !== 'Queued') expect(await fx.store.countDispatchesByStatus(s), s).toBe(records);
    }
  });
});

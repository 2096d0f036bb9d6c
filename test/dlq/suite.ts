/**
 * Dead-letter store additions (src/contract/dead-letters.ts), one suite for every store: requeue (attempts,
 * epoch, dedupe, errors, signals) and purge. Timestamps are `Date.now()` based so signal filtering (which
 * compares `available_at` with the wall clock) treats requeued dispatches as available.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDeadLetterStore } from '../../src/contract/dead-letters.js';
import type { DeadLetterMailboxStore } from '../../src/contract/dead-letters.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { errorOf } from '../support/storage-error.js';
import type { DispatchSignalEntry, RunDispatch } from '../../src/contract/types.js';
import type { MailboxStore } from '../../src/contract/store.js';

export interface DlqFixture {
  store: MailboxStore;
  /** Whether the store signals claimable dispatches (pullDispatchSignals answers). */
  signals: boolean;
  cleanup(): Promise<void>;
}

const LEASE = 30_000;

function dispatch(id: string, thread: string, extra: Partial<RunDispatch> = {}): RunDispatch {
  const at = Date.now() - 1_000;
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `${id}-run`,
    created_at: at,
    updated_at: at,
    available_at: at,
    max_attempts: 3,
    ...extra,
  });
}

/** Enqueue, claim and dead-letter `d` (explicitly, with `error`). */
async function deadLettered(store: MailboxStore, d: RunDispatch, error = 'boom'): Promise<RunDispatch> {
  await store.enqueue(d);
  const claimed = await store.claimDispatch(d.dispatch_id, 'c1', LEASE, Date.now());
  if (!claimed?.claim_token) throw new Error('claim failed');
  await store.recordDispatchStart(d.dispatch_id, claimed.claim_token, 'inst-1', Date.now());
  await store.deadLetter(d.dispatch_id, claimed.claim_token, error, Date.now());
  const dead = await store.loadDispatch(d.dispatch_id);
  expect(dead?.status).toBe('DeadLetter');
  return dead as RunDispatch;
}

/** Pull until `dispatchId`'s signal shows up (acking everything), or fail after `timeoutMs`. */
async function signalled(store: MailboxStore, dispatchId: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const batch: DispatchSignalEntry[] = await store.pullDispatchSignals(16, 500);
    let found = false;
    for (const entry of batch) {
      if (entry.dispatch_id === dispatchId) found = true;
      await entry.receipt.ack();
    }
    if (found) return;
  }
  throw new Error(`no signal for ${dispatchId} within ${timeoutMs} ms`);
}

export function describeDeadLetterStore(name: string, make: () => Promise<DlqFixture>): void {
  describe(`dead-letter store additions: ${name}`, () => {
    let fixture: DlqFixture;
    let store: DeadLetterMailboxStore;

    beforeEach(async () => {
      fixture = await make();
      if (!isDeadLetterStore(fixture.store)) throw new Error('not a DeadLetterMailboxStore');
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it('requeues a dead letter: Queued now, projection cleared, attempts and last_error kept', async () => {
      const dead = await deadLettered(store, dispatch('d1', 't1'), 'model exploded');
      const before = await Promise.all([
        store.countDispatchesByStatus('DeadLetter'),
        store.countDispatchesByStatus('Queued'),
      ]);
      const now = Date.now();
      const requeued = await store.requeueDeadLetter('d1', now);
      expect(requeued).toMatchObject({
        dispatch_id: 'd1',
        status: 'Queued',
        available_at: now,
        updated_at: now,
        attempt_count: dead.attempt_count,
        last_error: 'model exploded',
        completed_at: null,
        claim_token: null,
        claimed_by: null,
        lease_until: null,
        dispatch_instance_id: null,
        run_status: null,
        termination: null,
        run_response: null,
        run_error: null,
      });
      expect(await store.loadDispatch('d1')).toEqual(requeued);
      expect(await store.countDispatchesByStatus('DeadLetter')).toBe(before[0] - 1);
      expect(await store.countDispatchesByStatus('Queued')).toBe(before[1] + 1);
      expect((await store.listTerminalDispatches(100, 0)).map((d) => d.dispatch_id)).not.toContain('d1');
      expect((await store.listDispatches('t1', ['Queued'], 10, 0)).map((d) => d.dispatch_id)).toEqual(['d1']);
      expect(await store.queuedThreadIds()).toContain('t1');
      const [claimed] = await store.claim('t1', 'c2', LEASE, Date.now(), 1);
      expect(claimed?.dispatch_id).toBe('d1');
    });

    it('resetAttempts gives the full max_attempts again; without it the next failure dead-letters', async () => {
      // Exhaust the attempts with nacks (max_attempts 2).
      await store.enqueue(dispatch('d1', 't1', { max_attempts: 2 }));
      await store.enqueue(dispatch('d2', 't2', { max_attempts: 2 }));
      for (const [id, thread] of [
        ['d1', 't1'],
        ['d2', 't2'],
      ] as const) {
        for (let i = 0; i < 2; i++) {
          const [c] = await store.claim(thread, 'c1', LEASE, Date.now() + i * 10, 1);
          if (!c?.claim_token) throw new Error(`claim ${id} failed`);
          await store.nack(id, c.claim_token, Date.now(), `fail ${i}`, Date.now());
        }
        expect((await store.loadDispatch(id))?.status).toBe('DeadLetter');
      }
      const kept = await store.requeueDeadLetter('d1', Date.now());
      expect(kept.attempt_count).toBe(2);
      const reset = await store.requeueDeadLetter('d2', Date.now(), { resetAttempts: true });
      expect(reset.attempt_count).toBe(0);

      // One more failure: d1 dead-letters again, d2 goes back to Queued.
      for (const thread of ['t1', 't2']) {
        const [c] = await store.claim(thread, 'c1', LEASE, Date.now(), 1);
        if (!c?.claim_token) throw new Error('claim failed');
        await store.nack(c.dispatch_id, c.claim_token, Date.now(), 'again', Date.now());
      }
      expect(await store.loadDispatch('d1')).toMatchObject({ status: 'DeadLetter', attempt_count: 2 });
      expect(await store.loadDispatch('d2')).toMatchObject({ status: 'Queued', attempt_count: 1 });
    });

    it("stamps the thread's current epoch: an interrupt after the death does not void the requeue", async () => {
      await deadLettered(store, dispatch('d1', 't1'));
      const { new_dispatch_epoch: epoch } = await store.interruptDetailed('t1', Date.now());
      expect(epoch).toBe(1);
      const requeued = await store.requeueDeadLetter('d1', Date.now());
      expect(requeued.dispatch_epoch).toBe(1);
      const [claimed] = await store.claim('t1', 'c1', LEASE, Date.now(), 1);
      expect(claimed).toMatchObject({ dispatch_id: 'd1', status: 'Claimed', dispatch_epoch: 1 });
      if (!claimed?.claim_token) throw new Error('no token');
      await store.ack('d1', claimed.claim_token, Date.now());
      expect((await store.loadDispatch('d1'))?.status).toBe('Acked');
    });

    it('refuses when another live dispatch holds the dedupe key, and holds the key again after', async () => {
      await deadLettered(store, dispatch('d1', 't1', { dedupe_key: 'k' }));
      // The dead letter released the key: a new dispatch takes it.
      await store.enqueue(dispatch('d2', 't1', { dedupe_key: 'k' }));
      const err = await errorOf(() => store.requeueDeadLetter('d1', Date.now()));
      expect(err.kind).toBe('AlreadyExists');
      expect(err.detail).toBe('dedupe_key=k');
      expect((await store.loadDispatch('d1'))?.status).toBe('DeadLetter');

      // Once d2 is done the key is free; the requeued d1 holds it against a third dispatch.
      const [c2] = await store.claim('t1', 'c1', LEASE, Date.now(), 1);
      if (!c2?.claim_token) throw new Error('claim failed');
      await store.ack('d2', c2.claim_token, Date.now());
      expect((await store.requeueDeadLetter('d1', Date.now())).status).toBe('Queued');
      const held = await errorOf(() => store.enqueue(dispatch('d3', 't1', { dedupe_key: 'k' })));
      expect(held.kind).toBe('AlreadyExists');
      expect(held.detail).toBe('dedupe_key=k');
    });

    it('answers NotFound, Validation for a live dispatch or bad options, and changes nothing', async () => {
      const missing = await errorOf(() => store.requeueDeadLetter('nope', Date.now()));
      expect(missing.kind).toBe('NotFound');
      expect(missing.detail).toBe('nope');

      await store.enqueue(dispatch('q1', 't1'));
      const queued = await errorOf(() => store.requeueDeadLetter('q1', Date.now()));
      expect(queued.kind).toBe('Validation');
      expect(queued.detail).toBe("dispatch 'q1' is Queued, not DeadLetter");

      await deadLettered(store, dispatch('d1', 't2'));
      for (const bad of [
        () => store.requeueDeadLetter('', Date.now()),
        () => store.requeueDeadLetter('d1', -1),
        () => store.requeueDeadLetter('d1', Date.now(), { resetAttempts: 'yes' as unknown as boolean }),
        () =>
          store.requeueDeadLetter('d1', Date.now(), { reset: true } as unknown as { resetAttempts: boolean }),
      ]) {
        expect((await errorOf(bad)).kind).toBe('Validation');
      }
      expect((await store.loadDispatch('d1'))?.status).toBe('DeadLetter');
      expect((await store.loadDispatch('q1'))?.status).toBe('Queued');
    });

    it('signals the requeued dispatch', async ({ skip }) => {
      if (!fixture.signals) skip();
      await deadLettered(store, dispatch('d1', 't1'));
      // Drain what enqueue signalled earlier (filtered out now: the dispatch is terminal), so the signal
      // below can only be the requeue's.
      while ((await store.pullDispatchSignals(16, 300)).length > 0);
      await store.requeueDeadLetter('d1', Date.now());
      await signalled(store, 'd1');
    });

    it('purges only dead letters; a thread left empty forgets its epoch', async () => {
      await deadLettered(store, dispatch('d1', 't1'));
      await deadLettered(store, dispatch('d2', 't2'));
      await store.enqueue(dispatch('q2', 't2'));
      await store.interruptDetailed('t1', Date.now()); // t1's epoch becomes 1, its only record is d1
      await store.enqueue(dispatch('q3', 't3'));
      const deadBefore = await store.countDispatchesByStatus('DeadLetter');

      expect(await store.purgeDeadLetters(['d1', 'd2', 'q3', 'missing', 'd1'])).toBe(2);
      expect(await store.loadDispatch('d1')).toBeNull();
      expect(await store.loadDispatch('d2')).toBeNull();
      expect((await store.loadDispatch('q3'))?.status).toBe('Queued');
      expect(await store.countDispatchesByStatus('DeadLetter')).toBe(deadBefore - 2);
      expect(await store.listDispatches('t2', ['DeadLetter'], 10, 0)).toEqual([]);
      expect(await store.currentDispatchEpoch('t1')).toBe(0);
      expect(await store.purgeDeadLetters([])).toBe(0);
      expect(await store.purgeDeadLetters(['d1'])).toBe(0);
    });

    it('validates purge arguments before touching anything', async () => {
      await deadLettered(store, dispatch('d1', 't1'));
      for (const bad of [
        () => store.purgeDeadLetters('d1' as unknown as string[]),
        () => store.purgeDeadLetters(['d1', '']),
        () => store.purgeDeadLetters(['d1', 7 as unknown as string]),
        () => store.purgeDeadLetters(Array.from({ length: 10_001 }, (_, i) => `x${i}`)),
      ]) {
        expect((await errorOf(bad)).kind).toBe('Validation');
      }
      expect((await store.loadDispatch('d1'))?.status).toBe('DeadLetter');
    });
  });
}

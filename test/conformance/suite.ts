/**
 * The reusable store conformance suite (design.md §4): every case of contract.md §12 (same names, steps and
 * assertions), the supplementary store cases of §12.1, the decisions of design.md §3, the exact field effects
 * of §2.6, ordering rules, real concurrency (Promise.all) and a bad-input sweep over every method.
 *
 * Every store must pass it unchanged: `describeConformance('memory', async () => ({ store, cleanup }))`.
 * Each test gets a fresh, empty store from `makeStore` and calls `cleanup` afterwards.
 */
import { v7 as uuidv7 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_BATCH, MAX_OFFSET } from '../../src/contract/args.js';
import { StorageError } from '../../src/contract/errors.js';
import type { StorageErrorKind } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch, RunDispatchResult } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES, isTerminal } from '../../src/contract/types.js';

export interface StoreFixture {
  store: MailboxStore;
  cleanup: () => Promise<void>;
  /**
   * Optional test hook: write `record` verbatim (no enqueue normalization, no epoch stamping). Only used to
   * plant a stale-epoch Queued dispatch, which the public API cannot produce (contract.md §6.2). Cases that
   * need it are skipped when a store does not provide it.
   */
  plant?: (record: RunDispatch) => Promise<void>;
}

export type MakeStore = () => Promise<StoreFixture>;

const LEASE = 30_000;
const C1 = 'consumer-1';
const C2 = 'consumer-2';
const UNSAFE = Number.MAX_SAFE_INTEGER + 1;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** contract.md §12 helper: a Queued dispatch with created_at = updated_at = available_at and max_attempts 5. */
export function makeDispatch(
  id: string,
  thread: string,
  run: string,
  priority: number,
  availableAt: number,
): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: run,
    created_at: availableAt,
    updated_at: availableAt,
    available_at: availableAt,
    priority,
    max_attempts: 5,
  });
}

/** Run `action` (sync throw or rejection both count) and return what it threw; fail if it succeeded. */
export async function errorOf(action: () => unknown): Promise<unknown> {
  let value: unknown;
  try {
    value = await action();
  } catch (err) {
    return err;
  }
  throw new Error(`expected the call to fail, but it returned ${JSON.stringify(value)}`);
}

export async function expectStorageError(
  action: () => unknown,
  kind: StorageErrorKind,
  label = '',
): Promise<StorageError> {
  const err = await errorOf(action);
  expect(err, `${label}: ${String(err)}`).toBeInstanceOf(StorageError);
  const se = err as StorageError;
  expect(se.kind, `${label}: ${se.message}`).toBe(kind);
  return se;
}

function expectClaimClear(d: RunDispatch): void {
  expect(d.claim_token).toBeNull();
  expect(d.claimed_by).toBeNull();
  expect(d.lease_until).toBeNull();
}

const ids = (ds: readonly RunDispatch[]): string[] => ds.map((d) => d.dispatch_id);

const DONE_RESULT = (runId: string, instance = 'attempt-1'): RunDispatchResult => ({
  run_id: runId,
  dispatch_instance_id: instance,
  status: 'done',
  termination: { type: 'natural_end' },
  response: 'ok',
  error: null,
});

export function describeConformance(name: string, makeStore: MakeStore): void {
  describe(`MailboxStore conformance: ${name}`, () => {
    let fixture: StoreFixture | null = null;

    beforeEach(async () => {
      fixture = await makeStore();
    });
    afterEach(async () => {
      const f = fixture;
      fixture = null;
      if (f) await f.cleanup();
    });

    const store = (): MailboxStore => {
      if (!fixture) throw new Error('no store: makeStore did not run');
      return fixture.store;
    };

    async function load(id: string): Promise<RunDispatch> {
      const d = await store().loadDispatch(id);
      if (d === null) throw new Error(`dispatch ${id} should exist`);
      return d;
    }

    async function enqueueAll(...ds: RunDispatch[]): Promise<void> {
      for (const d of ds) await store().enqueue(d);
    }

    /** Claim exactly one dispatch of `thread` (fails otherwise). */
    async function claimOne(
      thread: string,
      now = 1000,
      leaseMs = LEASE,
      consumer = C1,
    ): Promise<RunDispatch> {
      const claimed = await store().claim(thread, consumer, leaseMs, now, 1);
      expect(claimed, `claim(${thread}) at ${now}`).toHaveLength(1);
      return claimed[0] as RunDispatch;
    }

    function token(d: RunDispatch): string {
      if (d.claim_token === null) throw new Error(`dispatch ${d.dispatch_id} has no claim token`);
      return d.claim_token;
    }

    /** enqueue `d` and claim it at `now`; returns the claimed record. */
    async function enqueueAndClaim(d: RunDispatch, now = 1000, leaseMs = LEASE): Promise<RunDispatch> {
      await store().enqueue(d);
      const claimed = await claimOne(d.thread_id, now, leaseMs);
      expect(claimed.dispatch_id).toBe(d.dispatch_id);
      return claimed;
    }

    // ------------------------------------------------------------------------------------------------
    describe('contract.md §12 (the 35 shared conformance cases)', () => {
      it('1 enqueue_and_list', async () => {
        await store().enqueue(makeDispatch('d1', 't-enqueue', 'r1', 128, 1000));
        const listed = await store().listDispatches('t-enqueue', null, 100, 0);
        expect(listed).toHaveLength(1);
        expect(listed[0]?.dispatch_id).toBe('d1');
        expect(listed[0]?.status).toBe('Queued');
      });

      it('2 claim_returns_queued_dispatch', async () => {
        await store().enqueue(makeDispatch('d1', 't-claim', 'r1', 128, 1000));
        const claimed = await store().claim('t-claim', C1, LEASE, 1000, 10);
        expect(claimed).toHaveLength(1);
        const d = claimed[0] as RunDispatch;
        expect(d.dispatch_id).toBe('d1');
        expect(d.status).toBe('Claimed');
        expect(d.claim_token).not.toBeNull();
        expect(d.claimed_by).toBe(C1);
      });

      it('3 claim_respects_available_at', async () => {
        await store().enqueue(makeDispatch('d1', 't-avail', 'r1', 128, 5000));
        expect(await store().claim('t-avail', C1, LEASE, 1000, 10)).toEqual([]);
        const claimed = await store().claim('t-avail', C1, LEASE, 5000, 10);
        expect(ids(claimed)).toEqual(['d1']);
      });

      it('4 claim_respects_priority_before_created_at', async () => {
        await store().enqueue({ ...makeDispatch('d-low', 't-priority', 'r-low', 200, 1000), created_at: 10 });
        await store().enqueue({
          ...makeDispatch('d-high', 't-priority', 'r-high', 10, 1000),
          created_at: 20,
        });
        const claimed = await store().claim('t-priority', C1, LEASE, 1000, 1);
        expect(claimed).toHaveLength(1);
        expect(claimed[0]?.dispatch_id).toBe('d-high');
        expect(claimed[0]?.priority).toBe(10);
      });

      it('5 claim_limit_preserves_thread_exclusivity', async () => {
        await store().enqueue(makeDispatch('d-one', 't-claim-limit', 'r-one', 10, 1000));
        await store().enqueue({
          ...makeDispatch('d-two', 't-claim-limit', 'r-two', 10, 1000),
          created_at: 2000,
        });
        const first = await store().claim('t-claim-limit', C1, LEASE, 1000, 1);
        expect(ids(first)).toEqual(['d-one']);
        expect(await store().claim('t-claim-limit', C2, LEASE, 1100, 10)).toEqual([]);
        await store().ack('d-one', token(first[0] as RunDispatch), 1200);
        const second = await store().claim('t-claim-limit', C2, LEASE, 1300, 1);
        expect(ids(second)).toEqual(['d-two']);
      });

      it('6 list_dispatches_orders_by_priority_then_created_at', async () => {
        await store().enqueue({ ...makeDispatch('d-low', 't-list-order', 'r1', 200, 1000), created_at: 10 });
        await store().enqueue({
          ...makeDispatch('d-high-newer', 't-list-order', 'r2', 10, 1000),
          created_at: 30,
        });
        await store().enqueue({
          ...makeDispatch('d-high-older', 't-list-order', 'r3', 10, 1000),
          created_at: 20,
        });
        const listed = await store().listDispatches('t-list-order', null, 10, 0);
        expect(ids(listed)).toEqual(['d-high-older', 'd-high-newer', 'd-low']);
      });

      it('7 ack_transitions_to_acked', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-ack', 'r1', 128, 1000));
        await store().ack('d1', token(claimed), 2000);
        const d = await load('d1');
        expect(d.status).toBe('Acked');
        expectClaimClear(d);
      });

      it('8 ack_rejects_wrong_claim_token', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-ack-wrong', 'r1', 128, 1000));
        await errorOf(() => store().ack('d1', 'wrong-token', 2000));
        expect((await load('d1')).status).toBe('Claimed');
      });

      it('9 nack_returns_to_queued', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-nack', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'attempt-1', 1500);
        await store().nack('d1', token(claimed), 3000, 'transient error', 2000);
        const d = await load('d1');
        expect(d.status).toBe('Queued');
        expect(d.attempt_count).toBe(1);
        expect(d.available_at).toBe(3000);
        expectClaimClear(d);
        expect(d.last_error).toBe('transient error');
        expect(d.run_status).toBeNull();
        expect(d.dispatch_instance_id).toBeNull();
      });

      it('10 nack_dead_letters_after_max_attempts', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-dead', 'r1', 128, 1000), max_attempts: 2 });
        const first = await claimOne('t-dead', 1000);
        await store().nack('d1', token(first), 1500, 'retry', 1100);
        let d = await load('d1');
        expect(d.status).toBe('Queued');
        expect(d.attempt_count).toBe(1);
        const second = await claimOne('t-dead', 1500);
        expect(second.claim_token).not.toBe(first.claim_token);
        await store().nack('d1', token(second), 2500, 'final error', 2000);
        d = await load('d1');
        expect(d.status).toBe('DeadLetter');
        expect(d.attempt_count).toBe(2);
        expectClaimClear(d);
      });

      it('11 cancel_queued_dispatch', async () => {
        await store().enqueue(makeDispatch('d1', 't-cancel', 'r1', 128, 1000));
        const cancelled = await store().cancel('d1', 2000);
        expect(cancelled).not.toBeNull();
        expect(cancelled?.status).toBe('Cancelled');
        const d = await load('d1');
        expect(d.status).toBe('Cancelled');
        expectClaimClear(d);
      });

      it('12 cancel_claimed_dispatch_returns_none', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-cancel-claimed', 'r1', 128, 1000));
        expect(await store().cancel('d1', 2000)).toBeNull();
        expect((await load('d1')).status).toBe('Claimed');
      });

      it('13 extend_lease_success', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-extend', 'r1', 128, 1000), 1000, 30_000);
        expect(await store().extendLease('d1', token(claimed), 60_000, 15_000)).toBe(true);
        expect((await load('d1')).lease_until).toBe(75_000);
      });

      it('14 extend_lease_wrong_token', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-extend-wrong', 'r1', 128, 1000));
        const leaseUntil = claimed.lease_until;
        expect(await store().extendLease('d1', 'wrong-token', 60_000, 15_000)).toBe(false);
        expect((await load('d1')).lease_until).toBe(leaseUntil);
      });

      it('15 interrupt_supersedes_queued', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-interrupt', 'r1', 128, 1000),
          makeDispatch('d2', 't-interrupt', 'r2', 128, 1000),
        );
        const result = await store().interruptDetailed('t-interrupt', 2000);
        expect(result.superseded_count).toBe(2);
        expect(result.superseded_dispatches).toHaveLength(2);
        for (const d of result.superseded_dispatches) expect(d.status).toBe('Superseded');
        expect(ids(result.superseded_dispatches).sort()).toEqual(['d1', 'd2']);
        expect(result.active_dispatch).toBeNull();
        expect(result.new_dispatch_epoch).toBeGreaterThanOrEqual(1);
        expect(await store().listDispatches('t-interrupt', ['Superseded'], 100, 0)).toHaveLength(2);
      });

      it('16 interrupt_returns_active_claimed', async () => {
        await store().enqueue(makeDispatch('d1', 't-active', 'r1', 128, 1000));
        const claimed = await claimOne('t-active', 1000);
        await store().enqueue(makeDispatch('d2', 't-active', 'r2', 128, 1000));
        const result = await store().interruptDetailed('t-active', 2000);
        expect(result.active_dispatch?.dispatch_id).toBe('d1');
        expect(result.active_dispatch?.status).toBe('Claimed');
        expect(result.active_dispatch).toEqual(claimed);
        expect(result.superseded_count).toBe(1);
        expect(ids(result.superseded_dispatches)).toEqual(['d2']);
        expect(result.superseded_dispatches[0]?.status).toBe('Superseded');
      });

      it('17 current_dispatch_epoch_tracks_interrupt', async () => {
        expect(await store().currentDispatchEpoch('t-epoch')).toBe(0);
        const result = await store().interrupt('t-epoch', 2000);
        expect(result.new_dispatch_epoch).toBeGreaterThan(0);
        expect(await store().currentDispatchEpoch('t-epoch')).toBe(result.new_dispatch_epoch);
      });

      it('18 supersede_claimed_terminalizes_active_dispatch', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-supersede', 'r1', 128, 1000));
        const result = await store().supersedeClaimed('d1', token(claimed), 2000, 'test supersede');
        expect(result).not.toBeNull();
        expect(result?.status).toBe('Superseded');
        expectClaimClear(result as RunDispatch);
        expect(result?.completed_at).toBe(2000);
        const d = await load('d1');
        expect(d.status).toBe('Superseded');
        expect(d.claim_token).toBeNull();
      });

      it('19 extend_lease_rejects_stale_claim_after_interrupt', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-stale-extend', 'r1', 128, 1000));
        await store().interrupt('t-stale-extend', 1500);
        expect(await store().extendLease('d1', token(claimed), 30_000, 2000)).toBe(false);
        const d = await load('d1');
        expect(d.status).toBe('Superseded');
        expect(d.claim_token).toBeNull();
      });

      it('20 record_dispatch_start_rejects_stale_claim_after_interrupt', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-stale-start', 'r1', 128, 1000));
        await store().interrupt('t-stale-start', 1500);
        await errorOf(() => store().recordDispatchStart('d1', token(claimed), 'attempt-1', 2000));
        const d = await load('d1');
        expect(d.status).toBe('Superseded');
        expect(d.dispatch_instance_id).toBeNull();
        expect(d.run_status).toBeNull();
      });

      it('21 reclaim_expired_stale_claim_supersedes', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-stale-reclaim', 'r1', 128, 1000), 1000, 100);
        await store().interrupt('t-stale-reclaim', 1050);
        expect(await store().reclaimExpiredLeases(2000, 10)).toEqual([]);
        const d = await load('d1');
        expect(d.status).toBe('Superseded');
        expect(d.claim_token).toBeNull();
        expect(d.lease_until).toBeNull();
      });

      it('22 dedupe_key_rejects_duplicate', async () => {
        await store().enqueue({
          ...makeDispatch('d1', 't-dedupe', 'r1', 128, 1000),
          dedupe_key: 'unique-key',
        });
        await errorOf(() =>
          store().enqueue({ ...makeDispatch('d2', 't-dedupe', 'r2', 128, 1000), dedupe_key: 'unique-key' }),
        );
      });

      it('23 reclaim_expired_leases_requeues', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-reclaim', 'r1', 128, 1000), 1000, 100);
        const reclaimed = await store().reclaimExpiredLeases(2000, 10);
        expect(reclaimed).toHaveLength(1);
        expect(reclaimed[0]?.dispatch_id).toBe('d1');
        expect(reclaimed[0]?.status).toBe('Queued');
        expect(reclaimed[0]?.attempt_count).toBe(1);
        const d = await load('d1');
        expect(d.status).toBe('Queued');
        expect(d.claim_token).toBeNull();
      });

      it('24 reclaim_expired_leases_dead_letters_at_max_attempts', async () => {
        const claimed = await enqueueAndClaim(
          { ...makeDispatch('d1', 't-reclaim-dl', 'r1', 128, 1000), max_attempts: 1 },
          1000,
          100,
        );
        await store().recordDispatchStart('d1', token(claimed), 'attempt-1', 1050);
        const reclaimed = await store().reclaimExpiredLeases(2000, 10);
        expect(reclaimed).toHaveLength(1);
        expect(reclaimed[0]?.dispatch_id).toBe('d1');
        expect(reclaimed[0]?.status).toBe('DeadLetter');
        expect(reclaimed[0]?.attempt_count).toBe(1);
        const d = await load('d1');
        expect(d.status).toBe('DeadLetter');
        expect(d.attempt_count).toBe(1);
        expectClaimClear(d);
        expect(d.run_status).toBeNull();
        expect(d.dispatch_instance_id).toBeNull();
      });

      it('25 reclaim_expired_leases_dead_letter_is_idempotent_under_concurrency', async () => {
        await enqueueAndClaim(
          { ...makeDispatch('d1', 't-reclaim-race', 'r1', 128, 1000), max_attempts: 1 },
          1000,
          100,
        );
        const [a, b] = await Promise.all([
          store().reclaimExpiredLeases(2000, 10),
          store().reclaimExpiredLeases(2000, 10),
        ]);
        const combined = [...a, ...b];
        expect(combined).toHaveLength(1);
        expect(combined[0]?.dispatch_id).toBe('d1');
        expect(combined[0]?.status).toBe('DeadLetter');
        const d = await load('d1');
        expect(d.status).toBe('DeadLetter');
        expect(d.attempt_count).toBe(1);
        expectClaimClear(d);
        expect(await store().reclaimExpiredLeases(3000, 10)).toEqual([]);
      });

      it('26 purge_terminal_removes_old', async () => {
        await store().enqueue(makeDispatch('d1', 't-purge', 'r1', 128, 1000));
        await store().cancel('d1', 1500);
        expect((await load('d1')).status).toBe('Cancelled');
        expect(await store().purgeTerminal(2000)).toBe(1);
        expect(await store().loadDispatch('d1')).toBeNull();
      });

      it('27 queued_thread_ids_returns_active_threads', async () => {
        await store().enqueue(makeDispatch('d1', 'thread-a', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d2', 'thread-b', 'r2', 128, 1000));
        const threads = await store().queuedThreadIds();
        expect(threads).toContain('thread-a');
        expect(threads).toContain('thread-b');
        expect(threads).toHaveLength(2);
      });

      it('28 count_dispatches_by_status_tracks_lifecycle', async () => {
        await store().enqueue(makeDispatch('d1', 't-count-a', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d2', 't-count-b', 'r2', 128, 1000));
        expect(await store().countDispatchesByStatus('Queued')).toBe(2);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(0);
        const claimed = await claimOne('t-count-a', 1000);
        expect(await store().countDispatchesByStatus('Queued')).toBe(1);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
        await store().ack('d1', token(claimed), 1100);
        await store().cancel('d2', 1200);
        expect(await store().countDispatchesByStatus('Queued')).toBe(0);
        expect(await store().countDispatchesByStatus('Acked')).toBe(1);
        expect(await store().countDispatchesByStatus('Cancelled')).toBe(1);
      });

      it('29 list_terminal_dispatches_returns_all_terminal', async () => {
        await store().enqueue(makeDispatch('d-cancel', 't-terminal-a', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d-supersede', 't-terminal-b', 'r2', 128, 1001));
        await store().enqueue(makeDispatch('d-queued', 't-terminal-c', 'r3', 128, 1002));
        await store().cancel('d-cancel', 2000);
        await store().interrupt('t-terminal-b', 3000);
        const terminal = await store().listTerminalDispatches(10, 0);
        const pairs = terminal
          .map((d) => [d.dispatch_id, d.status] as const)
          .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
        expect(pairs).toEqual([
          ['d-cancel', 'Cancelled'],
          ['d-supersede', 'Superseded'],
        ]);
        const page = await store().listTerminalDispatches(1, 1);
        expect(page).toHaveLength(1);
        expect(isTerminal((page[0] as RunDispatch).status)).toBe(true);
      });

      it('30 claim_dispatch_by_id', async () => {
        await store().enqueue(makeDispatch('d1', 't-claim-id', 'r1', 128, 1000));
        const d = await store().claimDispatch('d1', C1, LEASE, 1000);
        expect(d).not.toBeNull();
        expect(d?.dispatch_id).toBe('d1');
        expect(d?.status).toBe('Claimed');
        expect(d?.claim_token).not.toBeNull();
      });

      it('31 claim_dispatch_ignores_available_at', async () => {
        await store().enqueue({
          ...makeDispatch('d-guarded', 't-guarded', 'r1', 128, 1000),
          available_at: 1_000_000,
        });
        expect(await store().claim('t-guarded', C1, LEASE, 1000, 10)).toEqual([]);
        const d = await store().claimDispatch('d-guarded', C1, LEASE, 1000);
        expect(d).not.toBeNull();
        expect(d?.status).toBe('Claimed');
      });

      it('32 record_dispatch_start_marks_running', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-start', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'attempt-1', 1500);
        const d = await load('d1');
        expect(d.dispatch_instance_id).toBe('attempt-1');
        expect(d.run_status).toBe('running');
        expect(d.termination).toBeNull();
        expect(d.run_response).toBeNull();
        expect(d.run_error).toBeNull();
        expect(d.completed_at).toBeNull();
      });

      it('33 record_run_result_sets_terminal_projection', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-result', 'r1', 128, 1000));
        await store().recordRunResult(
          'd1',
          token(claimed),
          {
            run_id: 'r1',
            dispatch_instance_id: 'attempt-1',
            status: 'done',
            termination: { type: 'natural_end' },
            response: 'ok',
            error: null,
          },
          2000,
        );
        const d = await load('d1');
        expect(d.dispatch_instance_id).toBe('attempt-1');
        expect(d.run_status).toBe('done');
        expect(d.termination).toEqual({ type: 'natural_end' });
        expect(d.run_response).toBe('ok');
        expect(d.run_error).toBeNull();
        expect(d.completed_at).toBe(2000);
      });

      it('34 record_projection_rejects_missing_or_unclaimed_dispatch', async () => {
        const result: RunDispatchResult = {
          run_id: 'r-missing',
          dispatch_instance_id: 'attempt-missing',
          status: 'done',
          termination: { type: 'natural_end' },
          response: null,
          error: null,
        };
        await errorOf(() => store().recordDispatchStart('missing', 'token', 'attempt-missing', 1000));
        await errorOf(() => store().recordRunResult('missing', 'token', result, 1000));
        await store().enqueue(makeDispatch('d1', 't-projection', 'r1', 128, 1000));
        await errorOf(() => store().recordDispatchStart('d1', 'token', 'attempt-1', 1100));
        await errorOf(() => store().recordRunResult('d1', 'token', result, 1100));
        const d = await load('d1');
        expect(d.status).toBe('Queued');
        expect(d.run_status).toBeNull();
        expect(d.dispatch_instance_id).toBeNull();
      });

      it('35 fifo_ordering_within_same_priority', async () => {
        const older = `older-${uuidv7()}`;
        const newer = `newer-${uuidv7()}`;
        // Enqueue the newer one first: order must come from created_at, not insertion or id.
        await store().enqueue({ ...makeDispatch(newer, 't-fifo', 'r-newer', 128, 1000), created_at: 200 });
        await store().enqueue({ ...makeDispatch(older, 't-fifo', 'r-older', 128, 1000), created_at: 100 });
        const first = await store().claim('t-fifo', C1, LEASE, 1000, 1);
        expect(ids(first)).toEqual([older]);
        await store().ack(older, token(first[0] as RunDispatch), 1100);
        const second = await store().claim('t-fifo', C1, LEASE, 1100, 1);
        expect(ids(second)).toEqual([newer]);
      });
    });

    // ------------------------------------------------------------------------------------------------
    describe('contract.md §12.1 (supplementary store cases)', () => {
      it('enqueue of a Claimed dispatch → Validation "must start as Queued", nothing stored', async () => {
        const d: RunDispatch = {
          ...makeDispatch('d1', 't-sup', 'r1', 128, 1000),
          status: 'Claimed',
          claim_token: 'tok',
          claimed_by: C1,
          lease_until: 5000,
        };
        const err = await expectStorageError(() => store().enqueue(d), 'Validation');
        expect(err.message).toContain('must start as Queued');
        expect(await store().loadDispatch('d1')).toBeNull();
      });

      it('claim limit 1 with 3 queued → 1 claimed, 2 remain Queued', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-batch', 'r1', 128, 1000),
          makeDispatch('d2', 't-batch', 'r2', 128, 1001),
          makeDispatch('d3', 't-batch', 'r3', 128, 1002),
        );
        const claimed = await store().claim('t-batch', C1, LEASE, 2000, 1);
        expect(ids(claimed)).toEqual(['d1']);
        expect(ids(await store().listDispatches('t-batch', ['Queued'], 10, 0))).toEqual(['d2', 'd3']);
      });

      it('claim limit 2 with 3 queued and none active → 2 claimed with one shared token', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-batch2', 'r1', 128, 1000),
          makeDispatch('d2', 't-batch2', 'r2', 128, 1001),
          makeDispatch('d3', 't-batch2', 'r3', 128, 1002),
        );
        const claimed = await store().claim('t-batch2', C1, LEASE, 2000, 2);
        expect(ids(claimed)).toEqual(['d1', 'd2']);
        expect(claimed[0]?.claim_token).toBe(claimed[1]?.claim_token);
        expect(ids(await store().listDispatches('t-batch2', ['Queued'], 10, 0))).toEqual(['d3']);
      });

      it('priority ordering across 3 dispatches (10, 128, 200) claimed one by one with acks', async () => {
        await enqueueAll(
          makeDispatch('d-mid', 't-prio3', 'r1', 128, 1000),
          makeDispatch('d-low', 't-prio3', 'r2', 200, 1000),
          makeDispatch('d-high', 't-prio3', 'r3', 10, 1000),
        );
        const order: string[] = [];
        for (let i = 0; i < 3; i++) {
          const d = await claimOne('t-prio3', 1000 + i * 10);
          order.push(d.dispatch_id);
          await store().ack(d.dispatch_id, token(d), 1005 + i * 10);
        }
        expect(order).toEqual(['d-high', 'd-mid', 'd-low']);
        expect(await store().claim('t-prio3', C1, LEASE, 2000, 1)).toEqual([]);
      });

      it('start → Claimed + running; result → still Claimed, done, completed_at; ack keeps the projection', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-life', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'attempt-1', 1100);
        let d = await load('d1');
        expect(d.status).toBe('Claimed');
        expect(d.run_status).toBe('running');
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1'), 1200);
        d = await load('d1');
        expect(d.status).toBe('Claimed');
        expect(d.run_status).toBe('done');
        expect(d.completed_at).toBe(1200);
        await store().ack('d1', token(claimed), 1300);
        d = await load('d1');
        expect(d.status).toBe('Acked');
        expect(d.run_status).toBe('done');
        expect(d.run_response).toBe('ok');
      });

      it('record_run_result with a wrong token → error, projection untouched', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-wrong-result', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'attempt-1', 1100);
        const before = await load('d1');
        await errorOf(() =>
          store().recordRunResult('d1', 'wrong-token', DONE_RESULT('r1', 'attempt-x'), 1200),
        );
        expect(await load('d1')).toEqual(before);
      });

      it('record_run_result with a stale token (earlier claim) → error, projection untouched', async () => {
        const first = await enqueueAndClaim(makeDispatch('d1', 't-stale-token', 'r1', 128, 1000));
        await store().nack('d1', token(first), 1000, 'retry', 1100);
        const second = await claimOne('t-stale-token', 1200);
        await store().recordDispatchStart('d1', token(second), 'attempt-2', 1300);
        const before = await load('d1');
        await errorOf(() =>
          store().recordRunResult('d1', token(first), DONE_RESULT('r1', 'attempt-1'), 1400),
        );
        expect(await load('d1')).toEqual(before);
      });

      it('explicit dead_letter → DeadLetter, terminal', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-dl', 'r1', 128, 1000));
        await store().deadLetter('d1', token(claimed), 'permanent', 2000);
        const d = await load('d1');
        expect(d.status).toBe('DeadLetter');
        expect(isTerminal(d.status)).toBe(true);
        expect(d.last_error).toBe('permanent');
        expectClaimClear(d);
      });

      it('claim skipped and claim_dispatch rejected while the thread has a Claimed dispatch; resumes after ack', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-busy', 'r1', 128, 1000),
          makeDispatch('d2', 't-busy', 'r2', 128, 1001),
        );
        const claimed = await claimOne('t-busy', 1000);
        expect(await store().claim('t-busy', C2, LEASE, 1100, 5)).toEqual([]);
        expect(await store().claimDispatch('d2', C2, LEASE, 1100)).toBeNull();
        expect((await load('d2')).status).toBe('Queued');
        await store().ack('d1', token(claimed), 1200);
        const next = await store().claim('t-busy', C2, LEASE, 1300, 5);
        expect(ids(next)).toEqual(['d2']);
      });

      it('FIFO over 5 dispatches (created 1000..1004, priority 0)', async () => {
        const order = [3, 0, 4, 1, 2];
        for (const i of order) await store().enqueue(makeDispatch(`d${i}`, 't-fifo5', `r${i}`, 0, 1000 + i));
        const seen: string[] = [];
        for (let i = 0; i < 5; i++) {
          const d = await claimOne('t-fifo5', 2000 + i * 10);
          seen.push(d.dispatch_id);
          await store().ack(d.dispatch_id, token(d), 2005 + i * 10);
        }
        expect(seen).toEqual(['d0', 'd1', 'd2', 'd3', 'd4']);
      });

      it('10 concurrent enqueues with distinct dedupe keys → 10 listed', async () => {
        await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store().enqueue({
              ...makeDispatch(`d${i}`, 't-dedupe10', `r${i}`, 128, 1000),
              dedupe_key: `key-${i}`,
            }),
          ),
        );
        expect(await store().listDispatches('t-dedupe10', null, 100, 0)).toHaveLength(10);
      });

      it('10 concurrent claims of one dispatch → exactly 1 winner (claim and claim_dispatch)', async () => {
        await store().enqueue(makeDispatch('d1', 't-race1', 'r1', 128, 1000));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store().claim('t-race1', `c-${i}`, LEASE, 1000, 1)),
        );
        expect(results.filter((r) => r.length > 0)).toHaveLength(1);

        await store().enqueue(makeDispatch('d2', 't-race2', 'r2', 128, 1000));
        const byId = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store().claimDispatch('d2', `c-${i}`, LEASE, 1000)),
        );
        const winners = byId.filter((r) => r !== null);
        expect(winners).toHaveLength(1);
        expect(await load('d2')).toEqual(winners[0]);
      });

      it('concurrent claim_dispatch of two same-thread dispatches → exactly 1', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-pair', 'r1', 128, 1000),
          makeDispatch('d2', 't-pair', 'r2', 128, 1000),
        );
        const [a, b] = await Promise.all([
          store().claimDispatch('d1', C1, LEASE, 1000),
          store().claimDispatch('d2', C2, LEASE, 1000),
        ]);
        expect([a, b].filter((r) => r !== null)).toHaveLength(1);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
      });

      it('different threads → independent claims with different tokens', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-ind-a', 'r1', 128, 1000),
          makeDispatch('d2', 't-ind-b', 'r2', 128, 1000),
        );
        const [a, b] = await Promise.all([
          store().claim('t-ind-a', C1, LEASE, 1000, 1),
          store().claim('t-ind-b', C1, LEASE, 1000, 1),
        ]);
        expect(ids(a)).toEqual(['d1']);
        expect(ids(b)).toEqual(['d2']);
        expect(a[0]?.claim_token).not.toBe(b[0]?.claim_token);
        const [x, y] = await Promise.all([
          store().claimDispatch('d3-missing', C1, LEASE, 1000),
          store().claimDispatch('d1', C1, LEASE, 1000),
        ]);
        expect(x).toBeNull();
        expect(y).toBeNull();
      });

      it('claim after nack(retry_at <= now) works', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-renack', 'r1', 128, 1000));
        await store().nack('d1', token(claimed), 1100, 'retry', 1200);
        const again = await claimOne('t-renack', 1200);
        expect(again.dispatch_id).toBe('d1');
        expect(again.attempt_count).toBe(1);
      });

      it("nack'd dispatch is not claimable before retry_at, and is at retry_at", async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-retry-at', 'r1', 128, 1000));
        await store().nack('d1', token(claimed), 5000, 'retry', 1100);
        expect(await store().claim('t-retry-at', C1, LEASE, 4999, 1)).toEqual([]);
        expect(ids(await store().claim('t-retry-at', C1, LEASE, 5000, 1))).toEqual(['d1']);
      });

      it('purge_terminal drops epoch state only for fully drained threads; re-enqueue on a drained thread works', async () => {
        await store().enqueue(makeDispatch('d-a', 't-drained', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d-b1', 't-busy-left', 'r2', 128, 1000));
        await store().interrupt('t-drained', 1100); // supersedes d-a, epoch 1
        await store().interrupt('t-busy-left', 1100); // supersedes d-b1, epoch 1
        await store().enqueue(makeDispatch('d-b2', 't-busy-left', 'r3', 128, 1200)); // still Queued afterwards
        expect(await store().purgeTerminal(5000)).toBe(2);
        expect(await store().currentDispatchEpoch('t-drained')).toBe(0);
        expect(await store().currentDispatchEpoch('t-busy-left')).toBe(1);
        expect((await load('d-b2')).status).toBe('Queued');

        await store().enqueue(makeDispatch('d-a2', 't-drained', 'r4', 128, 6000));
        const d = await load('d-a2');
        expect(d.dispatch_epoch).toBe(0);
        const claimed = await claimOne('t-drained', 6000);
        expect(claimed.dispatch_id).toBe('d-a2');
        await store().ack('d-a2', token(claimed), 6100);
        expect((await load('d-a2')).status).toBe('Acked');
      });

      it('dedupe key is reusable after cancel (and after any terminal state)', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-reuse', 'r1', 128, 1000), dedupe_key: 'k' });
        await store().cancel('d1', 1100);
        await store().enqueue({ ...makeDispatch('d2', 't-reuse', 'r2', 128, 1200), dedupe_key: 'k' });
        const claimed = await claimOne('t-reuse', 1300);
        await store().ack('d2', token(claimed), 1400);
        await store().enqueue({ ...makeDispatch('d3', 't-reuse', 'r3', 128, 1500), dedupe_key: 'k' });
        expect((await load('d3')).status).toBe('Queued');
      });

      it('dedupe is per thread: the same key on another thread is accepted', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-key-a', 'r1', 128, 1000), dedupe_key: 'shared' });
        await store().enqueue({ ...makeDispatch('d2', 't-key-b', 'r2', 128, 1000), dedupe_key: 'shared' });
        expect((await load('d2')).status).toBe('Queued');
      });

      it('dedupe holds while the holder is Claimed, even lease-expired', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-key-claimed', 'r1', 128, 1000), dedupe_key: 'k' });
        await claimOne('t-key-claimed', 1000, 100);
        const err = await expectStorageError(
          () => store().enqueue({ ...makeDispatch('d2', 't-key-claimed', 'r2', 128, 9000), dedupe_key: 'k' }),
          'AlreadyExists',
        );
        expect(err.detail).toBe('dedupe_key=k');
        expect(await store().loadDispatch('d2')).toBeNull();
      });

      it('enqueue after interrupt stamps the new epoch and remains claimable', async () => {
        const r = await store().interrupt('t-after', 1000);
        await store().enqueue({ ...makeDispatch('d1', 't-after', 'r1', 128, 1100), dispatch_epoch: 0 });
        expect((await load('d1')).dispatch_epoch).toBe(r.new_dispatch_epoch);
        const claimed = await claimOne('t-after', 1200);
        expect(claimed.dispatch_id).toBe('d1');
        expect(claimed.dispatch_epoch).toBe(r.new_dispatch_epoch);
        await store().ack('d1', token(claimed), 1300);
        expect((await load('d1')).status).toBe('Acked');
      });

      it('a stale Claimed dispatch blocks its thread until terminalized; the new one is then claimable', async () => {
        const stale = await enqueueAndClaim(makeDispatch('d1', 't-stale-block', 'r1', 128, 1000));
        await store().interrupt('t-stale-block', 1100);
        await store().enqueue(makeDispatch('d2', 't-stale-block', 'r2', 128, 1200));
        expect(await store().claim('t-stale-block', C2, LEASE, 1300, 1)).toEqual([]);
        expect(await store().claimDispatch('d2', C2, LEASE, 1300)).toBeNull();
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
        await expectStorageError(() => store().ack('d1', token(stale), 1400), 'VersionConflict');
        expect((await load('d1')).status).toBe('Superseded');
        expect(ids(await store().claim('t-stale-block', C2, LEASE, 1500, 1))).toEqual(['d2']);
      });

      it('an expired but unreclaimed lease still blocks claim (memory semantics, §5.2 step 3)', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-expired-block', 'r1', 128, 1000), 1000, 100);
        await store().enqueue(makeDispatch('d2', 't-expired-block', 'r2', 128, 1000));
        expect(await store().claim('t-expired-block', C2, LEASE, 5000, 1)).toEqual([]);
        expect(await store().claimDispatch('d2', C2, LEASE, 5000)).toBeNull();
        const reclaimed = await store().reclaimExpiredLeases(5000, 10);
        expect(ids(reclaimed)).toEqual(['d1']);
        // d1 is requeued with available_at = 5000 and the same (priority, created_at) as d2: id order decides.
        expect(ids(await store().claim('t-expired-block', C2, LEASE, 5000, 1))).toEqual(['d1']);
      });

      describe('stale-epoch Queued dispatches (planted: the public API cannot produce them, §6.2)', () => {
        /** Interrupt `thread` twice (epoch 2) and plant a Queued dispatch stamped with epoch 0. */
        async function plantStale(
          id: string,
          thread: string,
          availableAt = 100,
        ): Promise<RunDispatch | null> {
          const plant = fixture?.plant;
          if (!plant) return null;
          await store().interrupt(thread, 50);
          await store().interrupt(thread, 60);
          const d = { ...makeDispatch(id, thread, `run-${id}`, 0, availableAt), dispatch_epoch: 0 };
          await plant(d);
          expect(await load(id)).toEqual(d);
          return d;
        }

        const superseded = (d: RunDispatch, now: number): RunDispatch => ({
          ...d,
          status: 'Superseded',
          dispatch_epoch: 2,
          last_error: 'queued dispatch superseded by newer dispatch epoch',
          completed_at: now,
          updated_at: now,
        });

        it('claim supersedes a stale head (epoch := current, reason) and claims the next one', async (ctx) => {
          const stale = await plantStale('d-stale', 't-stale-head');
          if (!stale) return ctx.skip();
          await store().enqueue(makeDispatch('d-fresh', 't-stale-head', 'r1', 128, 1000));
          const claimed = await store().claim('t-stale-head', C1, LEASE, 2000, 1);
          expect(ids(claimed)).toEqual(['d-fresh']);
          expect(await load('d-stale')).toEqual(superseded(stale, 2000));
        });

        it('claim supersedes stale Queued ones even with limit 0, when not yet available, or when the thread is busy', async (ctx) => {
          const early = await plantStale('d-s1', 't-stale-lim0', 9_000_000);
          if (!early) return ctx.skip();
          expect(await store().claim('t-stale-lim0', C1, LEASE, 2000, 0)).toEqual([]);
          expect(await load('d-s1')).toEqual(superseded(early, 2000));

          const busy = await plantStale('d-s2', 't-stale-busy');
          await store().enqueue(makeDispatch('d-active', 't-stale-busy', 'r1', 128, 1000));
          await store().claimDispatch('d-active', C1, LEASE, 1000);
          expect(await store().claim('t-stale-busy', C2, LEASE, 2100, 5)).toEqual([]);
          expect(await load('d-s2')).toEqual(superseded(busy as RunDispatch, 2100));
        });

        it('claim_dispatch of a stale Queued dispatch supersedes it and returns null', async (ctx) => {
          const stale = await plantStale('d-stale', 't-stale-cd');
          if (!stale) return ctx.skip();
          expect(await store().claimDispatch('d-stale', C1, LEASE, 3000)).toBeNull();
          expect(await load('d-stale')).toEqual(superseded(stale, 3000));
        });

        it('a stale Queued dispatch counts in queued_thread_ids until terminalized, and cancel makes it Cancelled', async (ctx) => {
          const stale = await plantStale('d-stale', 't-stale-cancel');
          if (!stale) return ctx.skip();
          expect(await store().queuedThreadIds()).toEqual(['t-stale-cancel']);
          expect(await store().countDispatchesByStatus('Queued')).toBe(1);
          const cancelled = await store().cancel('d-stale', 4000);
          expect(cancelled).toEqual({ ...stale, status: 'Cancelled', completed_at: 4000, updated_at: 4000 });
          expect(await store().queuedThreadIds()).toEqual([]);
        });
      });
    });

    // ------------------------------------------------------------------------------------------------
    describe('design.md §3 decisions', () => {
      it('duplicate dispatch_id (Queued) → AlreadyExists with detail exactly the id; nothing overwritten', async () => {
        const original = { ...makeDispatch('dup-1', 't-dup', 'r1', 128, 1000), last_error: 'orig' };
        await store().enqueue(original);
        const before = await load('dup-1');
        const err = await expectStorageError(
          () =>
            store().enqueue({ ...makeDispatch('dup-1', 't-dup-other', 'r-other', 3, 2000), max_attempts: 9 }),
          'AlreadyExists',
        );
        expect(err.detail).toBe('dup-1');
        expect(err.message).toBe('already exists: dup-1');
        expect(await load('dup-1')).toEqual(before);
        expect(await store().listDispatches('t-dup-other', null, 10, 0)).toEqual([]);
        expect(await store().countDispatchesByStatus('Queued')).toBe(1);
        expect(await store().queuedThreadIds()).toEqual(['t-dup']);
      });

      it('duplicate dispatch_id of a Claimed dispatch → AlreadyExists(id); the claim survives', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('dup-2', 't-dup2', 'r1', 128, 1000));
        const err = await expectStorageError(
          () => store().enqueue(makeDispatch('dup-2', 't-dup2', 'r1', 128, 1000)),
          'AlreadyExists',
        );
        expect(err.detail).toBe('dup-2');
        expect(await load('dup-2')).toEqual(claimed);
        await store().ack('dup-2', token(claimed), 1100);
      });

      it('duplicate dispatch_id of a terminal dispatch → AlreadyExists(id); the record stays terminal', async () => {
        await store().enqueue(makeDispatch('dup-3', 't-dup3', 'r1', 128, 1000));
        const cancelled = await store().cancel('dup-3', 1100);
        const err = await expectStorageError(
          () => store().enqueue(makeDispatch('dup-3', 't-dup3', 'r1', 128, 1200)),
          'AlreadyExists',
        );
        expect(err.detail).toBe('dup-3');
        expect(await load('dup-3')).toEqual(cancelled);
        expect(await store().countDispatchesByStatus('Queued')).toBe(0);
      });

      it('re-enqueueing the same id with its own dedupe key while non-terminal → AlreadyExists', async () => {
        const d = { ...makeDispatch('dup-4', 't-dup4', 'r1', 128, 1000), dedupe_key: 'k4' };
        await store().enqueue(d);
        const before = await load('dup-4');
        await expectStorageError(() => store().enqueue(d), 'AlreadyExists');
        expect(await load('dup-4')).toEqual(before);
      });

      it('dedupe collision → AlreadyExists("dedupe_key=<key>"), nothing written', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-dd', 'r1', 128, 1000), dedupe_key: 'unique-key' });
        const err = await expectStorageError(
          () => store().enqueue({ ...makeDispatch('d2', 't-dd', 'r2', 128, 1000), dedupe_key: 'unique-key' }),
          'AlreadyExists',
        );
        expect(err.detail).toBe('dedupe_key=unique-key');
        expect(await store().loadDispatch('d2')).toBeNull();
        expect(ids(await store().listDispatches('t-dd', null, 10, 0))).toEqual(['d1']);
      });

      it('blank consumer_id → Validation before anything is touched (claim and claim_dispatch)', async () => {
        await store().enqueue(makeDispatch('d1', 't-blank', 'r1', 128, 1000));
        const before = await load('d1');
        for (const consumer of ['', '   ', '\t\n']) {
          const e1 = await expectStorageError(
            () => store().claim('t-blank', consumer, LEASE, 1000, 1),
            'Validation',
          );
          expect(e1.message).toContain('consumer_id');
          const e2 = await expectStorageError(
            () => store().claimDispatch('d1', consumer, LEASE, 1000),
            'Validation',
          );
          expect(e2.message).toContain('consumer_id');
        }
        expect(await load('d1')).toEqual(before);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(0);
        expect(ids(await store().claim('t-blank', C1, LEASE, 1000, 1))).toEqual(['d1']);
      });

      it('any blank id → Validation naming the field, nothing touched', async () => {
        await store().enqueue(makeDispatch('d1', 't-blank-id', 'r1', 128, 1000));
        const claimed = await claimOne('t-blank-id', 1000);
        const before = await load('d1');
        const cases: [string, () => Promise<unknown>][] = [
          ['dispatch_id', () => store().enqueue(makeDispatch(' ', 't-blank-id', 'r1', 128, 1000))],
          ['thread_id', () => store().enqueue(makeDispatch('d9', '', 'r1', 128, 1000))],
          ['run_id', () => store().enqueue(makeDispatch('d9', 't-blank-id', '  ', 128, 1000))],
          ['thread_id', () => store().claim(' ', C1, LEASE, 1000, 1)],
          ['dispatch_id', () => store().ack('', token(claimed), 1100)],
          ['claim_token', () => store().ack('d1', ' ', 1100)],
          ['dispatch_instance_id', () => store().recordDispatchStart('d1', token(claimed), ' ', 1100)],
          ['thread_id', () => store().interrupt('', 1100)],
          ['dispatch_id', () => store().cancel('', 1100)],
          ['dispatch_id', () => store().loadDispatch(' ')],
        ];
        for (const [field, call] of cases) {
          const err = await expectStorageError(call, 'Validation', field);
          expect(err.message, err.message).toContain(field);
        }
        expect(await load('d1')).toEqual(before);
        expect(await store().loadDispatch('d9')).toBeNull();
        expect(await store().currentDispatchEpoch('t-blank-id')).toBe(0);
      });

      it('ordering ties (same priority and created_at) break on dispatch_id ascending: list and claim', async () => {
        for (const id of ['m', 'b', 'z', 'a'])
          await store().enqueue(makeDispatch(id, 't-tie', `r-${id}`, 128, 1000));
        expect(ids(await store().listDispatches('t-tie', null, 10, 0))).toEqual(['a', 'b', 'm', 'z']);
        expect(ids(await store().listDispatches('t-tie', ['Queued'], 2, 1))).toEqual(['b', 'm']);
        const claimed = await store().claim('t-tie', C1, LEASE, 1000, 1);
        expect(ids(claimed)).toEqual(['a']);
        await store().ack('a', token(claimed[0] as RunDispatch), 1100);
        expect(ids(await store().claim('t-tie', C1, LEASE, 1200, 3))).toEqual(['b', 'm', 'z']);
      });

      it('claim(limit 3) on a free thread with 3 queued → 3 claimed sharing one token, in order', async () => {
        await enqueueAll(
          makeDispatch('d3', 't-three', 'r3', 128, 1002),
          makeDispatch('d1', 't-three', 'r1', 128, 1000),
          makeDispatch('d2', 't-three', 'r2', 128, 1001),
        );
        const claimed = await store().claim('t-three', C1, 5000, 2000, 3);
        expect(ids(claimed)).toEqual(['d1', 'd2', 'd3']);
        const tok = token(claimed[0] as RunDispatch);
        expect(tok).toMatch(UUID_V7);
        for (const d of claimed) {
          expect(d.status).toBe('Claimed');
          expect(d.claim_token).toBe(tok);
          expect(d.claimed_by).toBe(C1);
          expect(d.lease_until).toBe(7000);
          expect(await load(d.dispatch_id)).toEqual(d);
        }
        expect(await store().countDispatchesByStatus('Claimed')).toBe(3);
        for (const d of claimed) await store().ack(d.dispatch_id, tok, 2100);
        expect(await store().countDispatchesByStatus('Acked')).toBe(3);
      });

      it('u64 fields above MAX_SAFE_INTEGER, negative, fractional or NaN → Validation naming the field', async () => {
        const fields = [
          'created_at',
          'updated_at',
          'available_at',
          'dispatch_epoch',
          'attempt_count',
          'max_attempts',
        ];
        const bad = [UNSAFE, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY];
        for (const field of fields) {
          for (const value of bad) {
            const d = { ...makeDispatch('d-num', 't-num', 'r1', 128, 1000), [field]: value };
            const err = await expectStorageError(() => store().enqueue(d), 'Validation', `${field}=${value}`);
            expect(err.message, `${field}=${value}: ${err.message}`).toContain(field);
          }
        }
        expect(await store().loadDispatch('d-num')).toBeNull();
        await store().enqueue({ ...makeDispatch('d-max', 't-num', 'r1', 128, Number.MAX_SAFE_INTEGER) });
        expect((await load('d-max')).created_at).toBe(Number.MAX_SAFE_INTEGER);
      });

      it('priority is 0..255', async () => {
        for (const p of [256, -1, 1.5, Number.NaN, 1000]) {
          const err = await expectStorageError(
            () => store().enqueue(makeDispatch('d-p', 't-prio', 'r1', p, 1000)),
            'Validation',
            `priority ${p}`,
          );
          expect(err.message).toContain('priority');
        }
        expect(await store().loadDispatch('d-p')).toBeNull();
        await store().enqueue(makeDispatch('d-p0', 't-prio', 'r1', 0, 1000));
        await store().enqueue(makeDispatch('d-p255', 't-prio', 'r2', 255, 1000));
        expect((await load('d-p0')).priority).toBe(0);
        expect((await load('d-p255')).priority).toBe(255);
      });

      it('max_attempts >= 1 and attempt_count <= max_attempts', async () => {
        const err = await expectStorageError(
          () => store().enqueue({ ...makeDispatch('d-m', 't-max', 'r1', 128, 1000), max_attempts: 0 }),
          'Validation',
        );
        expect(err.message).toContain('max_attempts');
        const err2 = await expectStorageError(
          () =>
            store().enqueue({
              ...makeDispatch('d-m', 't-max', 'r1', 128, 1000),
              max_attempts: 2,
              attempt_count: 3,
            }),
          'Validation',
        );
        expect(err2.message).toContain('attempt_count');
        expect(await store().loadDispatch('d-m')).toBeNull();
        await store().enqueue({ ...makeDispatch('d-m1', 't-max', 'r1', 128, 1000), max_attempts: 1 });
        await store().enqueue({
          ...makeDispatch('d-m2', 't-max', 'r2', 128, 1000),
          max_attempts: 3,
          attempt_count: 3,
        });
        expect((await load('d-m2')).attempt_count).toBe(3);
      });

      it('claim tokens are fresh UUID v7s, distinct per claim', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-tok', 'r1', 128, 1000),
          makeDispatch('d2', 't-tok2', 'r2', 128, 1000),
        );
        const a = await claimOne('t-tok', 1000);
        const b = await store().claimDispatch('d2', C1, LEASE, 1000);
        expect(a.claim_token).toMatch(UUID_V7);
        expect(b?.claim_token).toMatch(UUID_V7);
        expect(a.claim_token).not.toBe(b?.claim_token);
        await store().nack('d1', token(a), 1000, 'again', 1100);
        const c = await claimOne('t-tok', 1200);
        expect(c.claim_token).toMatch(UUID_V7);
        expect(c.claim_token).not.toBe(a.claim_token);
      });

      it('ids with separators, braces, wildcards, spaces and non-ASCII work through every operation', async () => {
        const awkward = [
          'scope:6:tenant:d-1',
          '{tag}',
          'a.b.*',
          '>',
          'with space',
          '线程🚀',
          'x'.repeat(4000),
          'percent%s%d',
          'quote"\'\\',
        ];
        for (const [i, id] of awkward.entries()) {
          const thread = `${id}#thread`;
          await store().enqueue({
            ...makeDispatch(id, thread, `${id}#run`, 128, 1000 + i),
            dedupe_key: `${id}#key`,
          });
          expect((await load(id)).thread_id).toBe(thread);
          expect(ids(await store().listDispatches(thread, ['Queued'], 10, 0))).toEqual([id]);
          await expectStorageError(
            () =>
              store().enqueue({
                ...makeDispatch(`${id}#2`, thread, 'r', 128, 1000),
                dedupe_key: `${id}#key`,
              }),
            'AlreadyExists',
          );
        }
        expect(await store().queuedThreadIds()).toEqual(awkward.map((id) => `${id}#thread`).sort());
        for (const id of awkward) {
          const thread = `${id}#thread`;
          const claimed = await claimOne(thread, 2000);
          expect(claimed.dispatch_id).toBe(id);
          expect(await store().extendLease(id, token(claimed), 1000, 2100)).toBe(true);
          await store().recordDispatchStart(id, token(claimed), `${id}#instance`, 2200);
          await store().recordRunResult(id, token(claimed), DONE_RESULT(`${id}#run`, `${id}#instance`), 2300);
          await store().ack(id, token(claimed), 2400);
          const acked = await load(id);
          expect(acked.status).toBe('Acked');
          expect(acked.dispatch_instance_id).toBe(`${id}#instance`);
          expect((await store().interruptDetailed(thread, 2500)).new_dispatch_epoch).toBe(1);
        }
        expect(await store().countDispatchesByStatus('Acked')).toBe(awkward.length);
        expect(await store().purgeTerminal(3000)).toBe(awkward.length);
        for (const id of awkward) {
          expect(await store().loadDispatch(id)).toBeNull();
          expect(await store().currentDispatchEpoch(`${id}#thread`)).toBe(0);
        }
      });

      it('returned records are copies: mutating them changes nothing in the store', async () => {
        const input = makeDispatch('d1', 't-copy', 'r1', 128, 1000);
        await store().enqueue(input);
        input.priority = 1;
        input.run_id = 'mutated';
        const loaded = await load('d1');
        expect(loaded.priority).toBe(128);
        expect(loaded.run_id).toBe('r1');
        loaded.status = 'Acked';
        const claimed = await claimOne('t-copy', 1000);
        claimed.lease_until = 1;
        (claimed as { claim_token: string | null }).claim_token = 'forged';
        const fresh = await load('d1');
        expect(fresh.status).toBe('Claimed');
        expect(fresh.lease_until).toBe(1000 + LEASE);
        expect(fresh.claim_token).not.toBe('forged');
      });

      it('a dispatch enqueued with attempt_count == max_attempts dead-letters on its next nack and stays valid', async () => {
        const d = {
          ...makeDispatch('d1', 't-exhausted', 'r1', 128, 1000),
          attempt_count: 2,
          max_attempts: 2,
        };
        const claimed = await enqueueAndClaim(d);
        await store().nack('d1', token(claimed), 5000, 'boom', 1100);
        const after = await load('d1');
        expect(after.status).toBe('DeadLetter');
        expect(after.attempt_count).toBe(2);
        expect(await store().listTerminalDispatches(10, 0)).toHaveLength(1);
      });

      it('a dispatch enqueued with attempt_count == max_attempts dead-letters on lease expiry and stays valid', async () => {
        const d = {
          ...makeDispatch('d1', 't-exhausted', 'r1', 128, 1000),
          attempt_count: 1,
          max_attempts: 1,
        };
        await enqueueAndClaim(d, 1000, 100);
        const reclaimed = await store().reclaimExpiredLeases(2000, 10);
        expect(reclaimed.map((r) => [r.dispatch_id, r.status, r.attempt_count])).toEqual([
          ['d1', 'DeadLetter', 1],
        ]);
        expect((await load('d1')).status).toBe('DeadLetter');
      });
    });

    // ------------------------------------------------------------------------------------------------
    describe('contract.md §2.6 field effects of every transition', () => {
      it('enqueue stores the input as given, stamping the thread epoch over the input epoch', async () => {
        await store().interrupt('t-fx-enq', 500);
        await store().interrupt('t-fx-enq', 600);
        const input: RunDispatch = {
          ...makeDispatch('d1', 't-fx-enq', 'r1', 42, 1000),
          dedupe_key: 'key-1',
          dispatch_epoch: 7,
          available_at: 1500,
          attempt_count: 2,
          max_attempts: 4,
          last_error: 'earlier failure',
          created_at: 900,
          updated_at: 950,
        };
        await store().enqueue(input);
        expect(await load('d1')).toEqual({ ...input, dispatch_epoch: 2 });
        const minimal = {
          dispatch_id: 'd2',
          thread_id: 't-fx-enq2',
          run_id: 'r2',
          created_at: 1234,
        };
        await store().enqueue(minimal);
        expect(await load('d2')).toEqual(
          queuedDispatch({ dispatch_id: 'd2', thread_id: 't-fx-enq2', run_id: 'r2', created_at: 1234 }),
        );
      });

      it('claim: Claimed, new token, claimed_by, lease_until = now + lease_ms, updated_at = now; rest unchanged', async () => {
        const input = {
          ...makeDispatch('d1', 't-fx-claim', 'r1', 128, 1000),
          attempt_count: 1,
          last_error: 'x',
        };
        await store().enqueue(input);
        const before = await load('d1');
        const claimed = await claimOne('t-fx-claim', 1700, 2500);
        expect(claimed.claim_token).toMatch(UUID_V7);
        const expected: RunDispatch = {
          ...before,
          status: 'Claimed',
          claim_token: claimed.claim_token,
          claimed_by: C1,
          lease_until: 4200,
          updated_at: 1700,
        };
        expect(claimed).toEqual(expected);
        expect(await load('d1')).toEqual(expected);
      });

      it('claim_dispatch: same effects as claim, available_at untouched', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-fx-cd', 'r1', 128, 1000), available_at: 60_000 });
        const before = await load('d1');
        const claimed = await store().claimDispatch('d1', C2, 3000, 1100);
        if (!claimed) throw new Error('claimDispatch returned null');
        const expected: RunDispatch = {
          ...before,
          status: 'Claimed',
          claim_token: claimed.claim_token,
          claimed_by: C2,
          lease_until: 4100,
          updated_at: 1100,
        };
        expect(claimed).toEqual(expected);
        expect(await load('d1')).toEqual(expected);
      });

      it('extend_lease replaces lease_until with now + extension (may shorten) and sets updated_at', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-ext', 'r1', 128, 1000), 1000, 30_000);
        expect(await store().extendLease('d1', token(claimed), 10, 2000)).toBe(true);
        expect(await load('d1')).toEqual({ ...claimed, lease_until: 2010, updated_at: 2000 });
      });

      it('record_dispatch_start sets instance + running and clears termination/response/error/completed_at', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-start', 'r1', 128, 1000));
        await store().recordRunResult(
          'd1',
          token(claimed),
          {
            run_id: 'r1',
            dispatch_instance_id: 'i1',
            status: 'done',
            termination: { type: 'error', value: 'x' },
            response: 'resp',
            error: 'err',
          },
          1100,
        );
        await store().recordDispatchStart('d1', token(claimed), 'i2', 1200);
        expect(await load('d1')).toEqual({
          ...claimed,
          dispatch_instance_id: 'i2',
          run_status: 'running',
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: null,
          updated_at: 1200,
        });
      });

      it('record_run_result sets all five projection fields (absent → null), completed_at = updated_at = now', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-result', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'i1', 1100);
        await store().recordRunResult(
          'd1',
          token(claimed),
          {
            run_id: 'r1',
            dispatch_instance_id: 'i1',
            status: 'waiting',
            termination: { type: 'stopped', value: { code: 'max_rounds', detail: 'reached 10 rounds' } },
            response: 'partial',
            error: 'warn',
          },
          1200,
        );
        const withResult = await load('d1');
        expect(withResult).toEqual({
          ...claimed,
          dispatch_instance_id: 'i1',
          run_status: 'waiting',
          termination: { type: 'stopped', value: { code: 'max_rounds', detail: 'reached 10 rounds' } },
          run_response: 'partial',
          run_error: 'warn',
          completed_at: 1200,
          updated_at: 1200,
        });
        await store().recordRunResult(
          'd1',
          token(claimed),
          { run_id: 'r1', dispatch_instance_id: 'i3', status: 'done' },
          1300,
        );
        expect(await load('d1')).toEqual({
          ...claimed,
          dispatch_instance_id: 'i3',
          run_status: 'done',
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: 1300,
          updated_at: 1300,
        });
      });

      it('record_run_result with a different run_id → Validation, projection untouched', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-runid', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'i1', 1100);
        const before = await load('d1');
        const err = await expectStorageError(
          () => store().recordRunResult('d1', token(claimed), DONE_RESULT('r-other', 'i1'), 1200),
          'Validation',
        );
        expect(err.message).toContain('r-other');
        expect(await load('d1')).toEqual(before);
      });

      it('ack keeps the projection, clears the claim, completed_at = updated_at = now', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-ack', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'i1', 1100);
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1500);
        const before = await load('d1');
        await store().ack('d1', token(claimed), 2000);
        expect(await load('d1')).toEqual({
          ...before,
          status: 'Acked',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          completed_at: 2000,
          updated_at: 2000,
        });
      });

      it('a second ack with the same token → VersionConflict{0,1}, record unchanged', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-ack2', 'r1', 128, 1000));
        await store().ack('d1', token(claimed), 2000);
        const after = await load('d1');
        const err = await expectStorageError(
          () => store().ack('d1', token(claimed), 2100),
          'VersionConflict',
        );
        expect([err.expected, err.actual]).toEqual([0, 1]);
        expect(await load('d1')).toEqual(after);
      });

      it('cancel: Cancelled, completed_at = updated_at = now, last_error unchanged; only Queued', async () => {
        await store().enqueue({ ...makeDispatch('d1', 't-fx-cancel', 'r1', 128, 1000), last_error: 'prev' });
        const before = await load('d1');
        const cancelled = await store().cancel('d1', 2000);
        const expected: RunDispatch = {
          ...before,
          status: 'Cancelled',
          completed_at: 2000,
          updated_at: 2000,
        };
        expect(cancelled).toEqual(expected);
        expect(await load('d1')).toEqual(expected);
        expect(await store().cancel('d1', 2100)).toBeNull();
        expect(await store().cancel('missing', 2100)).toBeNull();
        expect(await load('d1')).toEqual(expected);
      });

      it('interrupt: Queued → Superseded with reason, dispatch_epoch unchanged, Claimed untouched', async () => {
        await store().interrupt('t-fx-int', 500); // epoch 1
        await store().enqueue(makeDispatch('d-active', 't-fx-int', 'r1', 128, 1000));
        const active = await claimOne('t-fx-int', 1000);
        await store().enqueue(makeDispatch('d-q', 't-fx-int', 'r2', 128, 1000));
        await store().enqueue(makeDispatch('d-future', 't-fx-int', 'r3', 128, 90_000));
        await store().enqueue(makeDispatch('d-other', 't-fx-int-other', 'r4', 128, 1000));
        const qBefore = await load('d-q');
        const fBefore = await load('d-future');
        const otherBefore = await load('d-other');
        const result = await store().interruptDetailed('t-fx-int', 2000);
        expect(result.new_dispatch_epoch).toBe(2);
        expect(result.superseded_count).toBe(2);
        expect(result.active_dispatch).toEqual(active);
        const superseded = (d: RunDispatch): RunDispatch => ({
          ...d,
          status: 'Superseded',
          last_error: 'queued dispatch superseded by interrupt',
          completed_at: 2000,
          updated_at: 2000,
        });
        expect(qBefore.dispatch_epoch).toBe(1);
        expect(await load('d-q')).toEqual(superseded(qBefore));
        expect(await load('d-future')).toEqual(superseded(fBefore));
        const listed = [...result.superseded_dispatches].sort((a, b) =>
          a.dispatch_id < b.dispatch_id ? -1 : 1,
        );
        expect(listed).toEqual([superseded(fBefore), superseded(qBefore)]);
        expect(await load('d-active')).toEqual(active);
        expect(await load('d-other')).toEqual(otherBefore);
        expect(await store().currentDispatchEpoch('t-fx-int')).toBe(2);
        expect(await store().currentDispatchEpoch('t-fx-int-other')).toBe(0);
      });

      it('interrupt after a batch claim returns one of the Claimed dispatches as active and modifies none', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-fx-batch', 'r1', 128, 1000),
          makeDispatch('d2', 't-fx-batch', 'r2', 128, 1001),
        );
        const claimed = await store().claim('t-fx-batch', C1, LEASE, 1100, 2);
        expect(ids(claimed)).toEqual(['d1', 'd2']);
        const result = await store().interruptDetailed('t-fx-batch', 1200);
        expect(result.superseded_count).toBe(0);
        expect(claimed).toContainEqual(result.active_dispatch);
        for (const d of claimed) expect(await load(d.dispatch_id)).toEqual(d);
      });

      it('interrupt (summary) = same operation as interrupt_detailed; unknown thread creates state', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-fx-sum', 'r1', 128, 1000),
          makeDispatch('d2', 't-fx-sum', 'r2', 128, 1000),
        );
        const summary = await store().interrupt('t-fx-sum', 2000);
        expect(summary.new_dispatch_epoch).toBe(1);
        expect(summary.superseded_count).toBe(2);
        expect(summary.active_dispatch).toBeNull();
        expect((await load('d1')).status).toBe('Superseded');
        const empty = await store().interruptDetailed('t-fx-nobody', 2000);
        expect(empty).toEqual({
          new_dispatch_epoch: 1,
          active_dispatch: null,
          superseded_count: 0,
          superseded_dispatches: [],
        });
        expect((await store().interrupt('t-fx-nobody', 2100)).new_dispatch_epoch).toBe(2);
        expect(await store().currentDispatchEpoch('t-fx-nobody')).toBe(2);
      });

      const staleOps: {
        op: string;
        reason: string;
        run: (s: MailboxStore, tok: string) => Promise<unknown>;
      }[] = [
        {
          op: 'ack',
          reason: 'claimed dispatch superseded by newer dispatch epoch',
          run: (s, tok) => s.ack('d1', tok, 2000),
        },
        {
          op: 'nack',
          reason: 'claimed dispatch superseded before nack',
          run: (s, tok) => s.nack('d1', tok, 3000, 'transient', 2000),
        },
        {
          op: 'deadLetter',
          reason: 'claimed dispatch superseded before dead letter',
          run: (s, tok) => s.deadLetter('d1', tok, 'fatal', 2000),
        },
        {
          op: 'recordDispatchStart',
          reason: 'claimed dispatch superseded before runtime start',
          run: (s, tok) => s.recordDispatchStart('d1', tok, 'i2', 2000),
        },
        {
          op: 'recordRunResult',
          reason: 'claimed dispatch superseded before run result',
          run: (s, tok) => s.recordRunResult('d1', tok, DONE_RESULT('r1', 'i2'), 2000),
        },
      ];
      for (const { op, reason, run } of staleOps) {
        it(`${op} on a stale claim → Superseded at the current epoch ("${reason}") + VersionConflict{epoch,current}`, async () => {
          await store().interrupt('t-fx-stale', 500); // epoch 1
          const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-stale', 'r1', 128, 1000));
          await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1100);
          const before = await load('d1');
          await store().interrupt('t-fx-stale', 1200); // epoch 2
          await store().interrupt('t-fx-stale', 1300); // epoch 3
          // A wrong token is checked first: no terminalization.
          const wrong = await expectStorageError(() => run(store(), 'wrong-token'), 'VersionConflict');
          expect([wrong.expected, wrong.actual]).toEqual([0, 1]);
          expect(await load('d1')).toEqual(before);

          const err = await expectStorageError(() => run(store(), token(claimed)), 'VersionConflict');
          expect([err.expected, err.actual]).toEqual([1, 3]);
          expect(err.message).toBe('version conflict: expected 1, actual 3');
          expect(await load('d1')).toEqual({
            ...before,
            status: 'Superseded',
            dispatch_epoch: 3,
            last_error: reason,
            claim_token: null,
            claimed_by: null,
            lease_until: null,
            dispatch_instance_id: null,
            run_status: null,
            termination: null,
            run_response: null,
            run_error: null,
            completed_at: 2000,
            updated_at: 2000,
          });
        });
      }

      it('extend_lease on a stale claim → false and Superseded ("claimed dispatch superseded during lease renewal")', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-stale-ext', 'r1', 128, 1000));
        await store().recordDispatchStart('d1', token(claimed), 'i1', 1050);
        const before = await load('d1');
        await store().interrupt('t-fx-stale-ext', 1100);
        expect(await store().extendLease('d1', 'wrong-token', 5000, 1500)).toBe(false);
        expect(await load('d1')).toEqual(before);
        expect(await store().extendLease('d1', token(claimed), 5000, 2000)).toBe(false);
        expect(await load('d1')).toEqual({
          ...before,
          status: 'Superseded',
          dispatch_epoch: 1,
          last_error: 'claimed dispatch superseded during lease renewal',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          dispatch_instance_id: null,
          run_status: null,
          completed_at: 2000,
          updated_at: 2000,
        });
      });

      it('extend_lease: missing / not Claimed / wrong token → false, no change', async () => {
        expect(await store().extendLease('missing', 'tok', 100, 1000)).toBe(false);
        await store().enqueue(makeDispatch('d1', 't-fx-ext-f', 'r1', 128, 1000));
        const before = await load('d1');
        expect(await store().extendLease('d1', 'tok', 100, 1000)).toBe(false);
        expect(await load('d1')).toEqual(before);
      });

      it('supersede_claimed: epoch = max(dispatch_epoch, current), reason, claim + projection cleared', async () => {
        await store().interrupt('t-fx-sc', 100); // epoch 1
        const a = await enqueueAndClaim(makeDispatch('d-a', 't-fx-sc', 'r1', 128, 1000));
        await store().recordRunResult('d-a', token(a), DONE_RESULT('r1', 'i1'), 1100);
        const aBefore = await load('d-a');
        const fresh = await store().supersedeClaimed('d-a', token(a), 1200, 'not stale');
        const expectedA: RunDispatch = {
          ...aBefore,
          status: 'Superseded',
          dispatch_epoch: 1,
          last_error: 'not stale',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          dispatch_instance_id: null,
          run_status: null,
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: 1200,
          updated_at: 1200,
        };
        expect(fresh).toEqual(expectedA);
        expect(await load('d-a')).toEqual(expectedA);

        const b = await enqueueAndClaim(makeDispatch('d-b', 't-fx-sc', 'r2', 128, 1300), 1300);
        await store().interrupt('t-fx-sc', 1400); // epoch 2
        await store().interrupt('t-fx-sc', 1500); // epoch 3
        const stale = await store().supersedeClaimed(
          'd-b',
          token(b),
          1600,
          'claimed dispatch superseded before execution start',
        );
        expect(stale).toEqual({
          ...b,
          status: 'Superseded',
          dispatch_epoch: 3,
          last_error: 'claimed dispatch superseded before execution start',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          completed_at: 1600,
          updated_at: 1600,
        });
      });

      it('supersede_claimed: missing → null, not Claimed → null (before the token check), wrong token → VersionConflict{0,1}', async () => {
        expect(await store().supersedeClaimed('missing', 'tok', 1000, 'r')).toBeNull();
        await store().enqueue(makeDispatch('d-q', 't-fx-sc2', 'r1', 128, 1000));
        const qBefore = await load('d-q');
        expect(await store().supersedeClaimed('d-q', 'wrong-token', 1000, 'r')).toBeNull();
        expect(await load('d-q')).toEqual(qBefore);
        const claimed = await claimOne('t-fx-sc2', 1000);
        const err = await expectStorageError(
          () => store().supersedeClaimed('d-q', 'wrong-token', 1100, 'r'),
          'VersionConflict',
        );
        expect([err.expected, err.actual]).toEqual([0, 1]);
        expect(await load('d-q')).toEqual(claimed);
      });

      it('dead_letter: DeadLetter, last_error, attempt_count unchanged, projection kept, completed_at = now', async () => {
        const claimed = await enqueueAndClaim({
          ...makeDispatch('d1', 't-fx-dl', 'r1', 128, 1000),
          attempt_count: 1,
        });
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1100);
        const before = await load('d1');
        await store().deadLetter('d1', token(claimed), 'permanent failure', 2000);
        expect(await load('d1')).toEqual({
          ...before,
          status: 'DeadLetter',
          last_error: 'permanent failure',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          completed_at: 2000,
          updated_at: 2000,
        });
      });

      it('nack with attempts left: Queued, +1, available_at = retry_at, projection and completed_at cleared', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-nack', 'r1', 128, 1000));
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1100);
        const before = await load('d1');
        await store().nack('d1', token(claimed), 4000, 'transient', 2000);
        expect(await load('d1')).toEqual({
          ...before,
          status: 'Queued',
          attempt_count: 1,
          available_at: 4000,
          last_error: 'transient',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          dispatch_instance_id: null,
          run_status: null,
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: null,
          updated_at: 2000,
        });
      });

      it('nack exhausted: DeadLetter, +1, available_at and projection kept, completed_at = now', async () => {
        const claimed = await enqueueAndClaim({
          ...makeDispatch('d1', 't-fx-nack-dl', 'r1', 128, 1000),
          max_attempts: 3,
          attempt_count: 2,
        });
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1100);
        const before = await load('d1');
        await store().nack('d1', token(claimed), 9000, 'last straw', 2000);
        expect(await load('d1')).toEqual({
          ...before,
          status: 'DeadLetter',
          attempt_count: 3,
          last_error: 'last straw',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          completed_at: 2000,
          updated_at: 2000,
        });
      });

      it('ack/nack/dead_letter/record_*: missing → NotFound; not Claimed or wrong token → VersionConflict{0,1}', async () => {
        const calls: [string, (id: string, tok: string) => Promise<unknown>][] = [
          ['ack', (id, tok) => store().ack(id, tok, 2000)],
          ['nack', (id, tok) => store().nack(id, tok, 3000, 'e', 2000)],
          ['deadLetter', (id, tok) => store().deadLetter(id, tok, 'e', 2000)],
          ['recordDispatchStart', (id, tok) => store().recordDispatchStart(id, tok, 'i', 2000)],
          ['recordRunResult', (id, tok) => store().recordRunResult(id, tok, DONE_RESULT('r1'), 2000)],
        ];
        await store().enqueue(makeDispatch('d-q', 't-fx-guard-q', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d-c', 't-fx-guard-c', 'r1', 128, 1000));
        const claimed = await claimOne('t-fx-guard-c', 1000);
        const qBefore = await load('d-q');
        for (const [name, call] of calls) {
          const missing = await expectStorageError(() => call('missing-id', 'tok'), 'NotFound', name);
          expect(missing.message, name).toContain('missing-id');
          const queued = await expectStorageError(() => call('d-q', 'tok'), 'VersionConflict', name);
          expect([queued.expected, queued.actual], name).toEqual([0, 1]);
          expect(queued.message).toBe('version conflict: expected 0, actual 1');
          const wrong = await expectStorageError(() => call('d-c', 'wrong-token'), 'VersionConflict', name);
          expect([wrong.expected, wrong.actual], name).toEqual([0, 1]);
        }
        expect(await load('d-q')).toEqual(qBefore);
        expect(await load('d-c')).toEqual(claimed);
      });

      it('lease expiry with attempts left: Queued, +1, available_at = now, projection cleared, last_error kept', async () => {
        const first = await enqueueAndClaim(makeDispatch('d1', 't-fx-exp', 'r1', 128, 1000));
        await store().nack('d1', token(first), 1000, 'first failure', 1050);
        const claimed = await claimOne('t-fx-exp', 1100, 100); // lease_until 1200
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1150);
        const before = await load('d1');
        const reclaimed = await store().reclaimExpiredLeases(3000, 10);
        const expected: RunDispatch = {
          ...before,
          status: 'Queued',
          attempt_count: 2,
          available_at: 3000,
          last_error: 'first failure',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          dispatch_instance_id: null,
          run_status: null,
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: null,
          updated_at: 3000,
        };
        expect(reclaimed).toEqual([expected]);
        expect(await load('d1')).toEqual(expected);
      });

      it('lease expiry exhausted: DeadLetter, +1, available_at = now, reason set, projection cleared, completed_at = now', async () => {
        const claimed = await enqueueAndClaim(
          { ...makeDispatch('d1', 't-fx-exp-dl', 'r1', 128, 1000), max_attempts: 1 },
          1000,
          100,
        );
        await store().recordRunResult('d1', token(claimed), DONE_RESULT('r1', 'i1'), 1050);
        const before = await load('d1');
        const reclaimed = await store().reclaimExpiredLeases(3000, 10);
        const expected: RunDispatch = {
          ...before,
          status: 'DeadLetter',
          attempt_count: 1,
          available_at: 3000,
          last_error: 'lease expired; max attempts reached',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          dispatch_instance_id: null,
          run_status: null,
          termination: null,
          run_response: null,
          run_error: null,
          completed_at: 3000,
          updated_at: 3000,
        };
        expect(reclaimed).toEqual([expected]);
        expect(await load('d1')).toEqual(expected);
      });

      it('reclaim of a stale expired claim → Superseded at the current epoch ("claimed dispatch lease expired after interrupt"), not returned', async () => {
        const claimed = await enqueueAndClaim(
          makeDispatch('d1', 't-fx-exp-stale', 'r1', 128, 1000),
          1000,
          100,
        );
        await store().interrupt('t-fx-exp-stale', 1050);
        await store().interrupt('t-fx-exp-stale', 1060);
        expect(await store().reclaimExpiredLeases(2000, 10)).toEqual([]);
        expect(await load('d1')).toEqual({
          ...claimed,
          status: 'Superseded',
          dispatch_epoch: 2,
          last_error: 'claimed dispatch lease expired after interrupt',
          claim_token: null,
          claimed_by: null,
          lease_until: null,
          completed_at: 2000,
          updated_at: 2000,
        });
      });

      it('reclaim boundary is strict: lease_until == now is still valid, lease_until < now expires', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-fx-bound', 'r1', 128, 1000), 1000, 500);
        expect(claimed.lease_until).toBe(1500);
        expect(await store().reclaimExpiredLeases(1000, 10)).toEqual([]);
        expect(await store().reclaimExpiredLeases(1500, 10)).toEqual([]);
        expect(await load('d1')).toEqual(claimed);
        expect(ids(await store().reclaimExpiredLeases(1501, 10))).toEqual(['d1']);
        expect(await store().reclaimExpiredLeases(1502, 10)).toEqual([]);
      });

      it('reclaim honours limit and later sweeps pick up the rest; limit 0 → []', async () => {
        for (let i = 0; i < 5; i++) {
          await enqueueAndClaim(makeDispatch(`d${i}`, `t-fx-lim-${i}`, `r${i}`, 128, 1000), 1000, 100);
        }
        expect(await store().reclaimExpiredLeases(2000, 0)).toEqual([]);
        const first = await store().reclaimExpiredLeases(2000, 2);
        expect(first).toHaveLength(2);
        const rest = await store().reclaimExpiredLeases(2000, 10);
        expect(rest).toHaveLength(3);
        expect([...ids(first), ...ids(rest)].sort()).toEqual(['d0', 'd1', 'd2', 'd3', 'd4']);
        expect(await store().countDispatchesByStatus('Queued')).toBe(5);
      });

      it('list_terminal_dispatches orders by (updated_at, created_at, dispatch_id) and pages', async () => {
        const mk = (id: string, created: number): RunDispatch =>
          makeDispatch(id, `t-lt-${id}`, `r-${id}`, 128, created);
        await enqueueAll(
          mk('a', 10),
          mk('b', 10),
          mk('c', 20),
          mk('d', 10),
          mk('f', 5),
          mk('e', 5),
          mk('q', 1),
        );
        await store().cancel('a', 3000);
        await store().cancel('b', 2000);
        await store().cancel('c', 2500);
        await store().cancel('d', 2500);
        await store().cancel('f', 4000);
        await store().cancel('e', 4000);
        const all = await store().listTerminalDispatches(100, 0);
        expect(ids(all)).toEqual(['b', 'd', 'c', 'a', 'e', 'f']);
        expect(ids(await store().listTerminalDispatches(2, 2))).toEqual(['c', 'a']);
        expect(ids(await store().listTerminalDispatches(10, 5))).toEqual(['f']);
        expect(await store().listTerminalDispatches(10, 6)).toEqual([]);
        expect(await store().listTerminalDispatches(0, 0)).toEqual([]);
      });

      it('purge_terminal is strict (updated_at < older_than) and never purges non-terminal records', async () => {
        await store().enqueue(makeDispatch('d-old-q', 't-purge-q', 'r1', 128, 10));
        await enqueueAndClaim(makeDispatch('d-old-c', 't-purge-c', 'r2', 128, 10), 10, 5);
        await store().enqueue(makeDispatch('d-t', 't-purge-t', 'r3', 128, 1000));
        await store().cancel('d-t', 2000);
        expect(await store().purgeTerminal(2000)).toBe(0);
        expect((await load('d-t')).status).toBe('Cancelled');
        expect(await store().purgeTerminal(2001)).toBe(1);
        expect(await store().loadDispatch('d-t')).toBeNull();
        expect(await store().purgeTerminal(Number.MAX_SAFE_INTEGER)).toBe(0);
        expect((await load('d-old-q')).status).toBe('Queued');
        expect((await load('d-old-c')).status).toBe('Claimed');
        expect(await store().countDispatchesByStatus('Cancelled')).toBe(0);
        expect(await store().listTerminalDispatches(10, 0)).toEqual([]);
      });

      it('purge epoch GC resets a drained thread to epoch 0, keeps it for threads with records left', async () => {
        await store().enqueue(makeDispatch('d1', 't-gc', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d-keep', 't-gc-young', 'r2', 128, 1000));
        await store().interrupt('t-gc', 2000);
        await store().interrupt('t-gc', 2100);
        await store().interrupt('t-gc-young', 9000); // terminal but too young to purge
        expect(await store().currentDispatchEpoch('t-gc')).toBe(2);
        expect(await store().purgeTerminal(5000)).toBe(1);
        expect(await store().loadDispatch('d1')).toBeNull();
        expect(await store().currentDispatchEpoch('t-gc')).toBe(0);
        expect(await store().currentDispatchEpoch('t-gc-young')).toBe(1);
        expect(await store().listDispatches('t-gc', null, 10, 0)).toEqual([]);
      });

      it('queued_thread_ids is sorted, includes delayed/future dispatches, excludes Claimed-only and terminal-only threads', async () => {
        await store().enqueue(makeDispatch('d1', 't-z', 'r1', 128, 1000));
        await store().enqueue(makeDispatch('d2', 't-a', 'r2', 128, 1_000_000_000));
        await store().enqueue(makeDispatch('d3', 't-m', 'r3', 128, 1000));
        await store().enqueue(makeDispatch('d4', 't-claimed-only', 'r4', 128, 1000));
        await store().enqueue(makeDispatch('d5', 't-cancelled-only', 'r5', 128, 1000));
        await store().enqueue(makeDispatch('d6', 'T-upper', 'r6', 128, 1000));
        await claimOne('t-claimed-only', 1000);
        await store().cancel('d5', 1100);
        expect(await store().queuedThreadIds()).toEqual(['T-upper', 't-a', 't-m', 't-z']);
        const claimed = await claimOne('t-m', 1000);
        await store().ack('d3', token(claimed), 1100);
        expect(await store().queuedThreadIds()).toEqual(['T-upper', 't-a', 't-z']);
      });

      it('list_dispatches: status filter, empty filter, limit 0, offset past end, all statuses included', async () => {
        await enqueueAll(
          makeDispatch('d-q', 't-ld', 'r1', 128, 1000),
          makeDispatch('d-c', 't-ld', 'r2', 10, 1000),
          makeDispatch('d-x', 't-ld', 'r3', 200, 1000),
          makeDispatch('d-other', 't-ld-other', 'r4', 128, 1000),
        );
        await store().cancel('d-x', 1100);
        await claimOne('t-ld', 1200);
        expect(ids(await store().listDispatches('t-ld', null, 10, 0))).toEqual(['d-c', 'd-q', 'd-x']);
        expect(ids(await store().listDispatches('t-ld', ['Queued', 'Claimed'], 10, 0))).toEqual([
          'd-c',
          'd-q',
        ]);
        expect(ids(await store().listDispatches('t-ld', ['Cancelled'], 10, 0))).toEqual(['d-x']);
        expect(await store().listDispatches('t-ld', [], 10, 0)).toEqual([]);
        expect(await store().listDispatches('t-ld', null, 0, 0)).toEqual([]);
        expect(await store().listDispatches('t-ld', null, 10, 3)).toEqual([]);
        expect(ids(await store().listDispatches('t-ld', null, 1, 1))).toEqual(['d-q']);
        expect(await store().listDispatches('t-unknown', null, 10, 0)).toEqual([]);
      });

      it('count_dispatches_by_status counts every status across threads, terminal ones until purged', async () => {
        await enqueueAll(
          makeDispatch('q1', 't-cnt-1', 'r', 128, 1000),
          makeDispatch('q2', 't-cnt-1', 'r', 128, 1001),
          makeDispatch('c1', 't-cnt-2', 'r', 128, 1000),
          makeDispatch('n1', 't-cnt-3', 'r', 128, 1000),
          makeDispatch('x1', 't-cnt-4', 'r', 128, 1000),
          makeDispatch('l1', 't-cnt-5', 'r', 128, 1000),
        );
        await claimOne('t-cnt-2', 1000);
        const n = await claimOne('t-cnt-3', 1000);
        await store().ack('n1', token(n), 1100);
        await store().cancel('x1', 1100);
        const l = await claimOne('t-cnt-5', 1000);
        await store().deadLetter('l1', token(l), 'x', 1100);
        await store().interrupt('t-cnt-1', 1200);
        await store().enqueue(makeDispatch('q3', 't-cnt-1', 'r', 128, 1300));
        const counts: Record<string, number> = {};
        for (const s of RUN_DISPATCH_STATUSES) counts[s] = await store().countDispatchesByStatus(s);
        expect(counts).toEqual({
          Queued: 1,
          Claimed: 1,
          Acked: 1,
          Cancelled: 1,
          Superseded: 2,
          DeadLetter: 1,
        });
        expect(await store().purgeTerminal(5000)).toBe(5);
        for (const s of ['Acked', 'Cancelled', 'Superseded', 'DeadLetter'] as const) {
          expect(await store().countDispatchesByStatus(s)).toBe(0);
        }
        expect(await store().countDispatchesByStatus('Queued')).toBe(1);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
      });

      it('what never raises: unknown ids and threads give null / false / [] / 0', async () => {
        expect(await store().loadDispatch('nope')).toBeNull();
        expect(await store().cancel('nope', 1000)).toBeNull();
        expect(await store().claimDispatch('nope', C1, LEASE, 1000)).toBeNull();
        expect(await store().extendLease('nope', 'tok', 100, 1000)).toBe(false);
        expect(await store().supersedeClaimed('nope', 'tok', 1000, 'r')).toBeNull();
        expect(await store().claim('nope', C1, LEASE, 1000, 10)).toEqual([]);
        expect(await store().currentDispatchEpoch('nope')).toBe(0);
        expect(await store().listDispatches('nope', null, 10, 0)).toEqual([]);
        expect(await store().listTerminalDispatches(10, 0)).toEqual([]);
        expect(await store().reclaimExpiredLeases(1000, 10)).toEqual([]);
        expect(await store().purgeTerminal(1000)).toBe(0);
        expect(await store().queuedThreadIds()).toEqual([]);
        for (const s of RUN_DISPATCH_STATUSES) expect(await store().countDispatchesByStatus(s)).toBe(0);
      });

      it('claim_dispatch: not Queued → null and untouched', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-cd-nq', 'r1', 128, 1000));
        expect(await store().claimDispatch('d1', C2, LEASE, 1100)).toBeNull();
        expect(await load('d1')).toEqual(claimed);
        await store().ack('d1', token(claimed), 1200);
        const acked = await load('d1');
        expect(await store().claimDispatch('d1', C2, LEASE, 1300)).toBeNull();
        expect(await load('d1')).toEqual(acked);
      });

      it('claim with limit 0 claims nothing', async () => {
        await store().enqueue(makeDispatch('d1', 't-lim0', 'r1', 128, 1000));
        expect(await store().claim('t-lim0', C1, LEASE, 1000, 0)).toEqual([]);
        expect((await load('d1')).status).toBe('Queued');
      });
    });

    // ------------------------------------------------------------------------------------------------
    describe('concurrency (real concurrent calls)', () => {
      it('64 concurrent claim(limit 1) on one thread → exactly one winner', async () => {
        await enqueueAll(
          makeDispatch('d1', 't-c64', 'r1', 128, 1000),
          makeDispatch('d2', 't-c64', 'r2', 128, 1001),
          makeDispatch('d3', 't-c64', 'r3', 128, 1002),
        );
        const results = await Promise.all(
          Array.from({ length: 64 }, (_, i) => store().claim('t-c64', `consumer-${i}`, LEASE, 2000, 1)),
        );
        const winners = results.filter((r) => r.length > 0);
        expect(winners).toHaveLength(1);
        expect(ids(winners[0] as RunDispatch[])).toEqual(['d1']);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
        expect(await store().countDispatchesByStatus('Queued')).toBe(2);
      });

      it('32 concurrent claim_dispatch on different dispatches of one thread → exactly one', async () => {
        const all = Array.from({ length: 32 }, (_, i) =>
          makeDispatch(`d${i}`, 't-c32', `r${i}`, 128, 1000 + i),
        );
        await Promise.all(all.map((d) => store().enqueue(d)));
        const results = await Promise.all(
          all.map((d, i) => store().claimDispatch(d.dispatch_id, `c-${i}`, LEASE, 2000)),
        );
        const winners = results.filter((r) => r !== null);
        expect(winners).toHaveLength(1);
        expect(await store().countDispatchesByStatus('Claimed')).toBe(1);
        expect(await store().countDispatchesByStatus('Queued')).toBe(31);
      });

      it('two concurrent reclaims return a requeue transition exactly once', async () => {
        await enqueueAndClaim(makeDispatch('d1', 't-crq', 'r1', 128, 1000), 1000, 100);
        await enqueueAndClaim(makeDispatch('d2', 't-crq2', 'r2', 128, 1000), 1000, 100);
        const [a, b] = await Promise.all([
          store().reclaimExpiredLeases(2000, 10),
          store().reclaimExpiredLeases(2000, 10),
        ]);
        expect([...ids(a), ...ids(b)].sort()).toEqual(['d1', 'd2']);
        for (const d of [...a, ...b]) expect(d.attempt_count).toBe(1);
        expect((await load('d1')).attempt_count).toBe(1);
        expect(await store().reclaimExpiredLeases(2000, 10)).toEqual([]);
      });

      it('16 concurrent enqueues with the same dedupe key → exactly one accepted, the rest AlreadyExists', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 16 }, (_, i) =>
            store().enqueue({ ...makeDispatch(`d${i}`, 't-cdd', `r${i}`, 128, 1000), dedupe_key: 'same' }),
          ),
        );
        const ok = results.filter((r) => r.status === 'fulfilled');
        expect(ok).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') {
            expect(r.reason).toBeInstanceOf(StorageError);
            expect((r.reason as StorageError).kind).toBe('AlreadyExists');
          }
        }
        expect(await store().listDispatches('t-cdd', null, 100, 0)).toHaveLength(1);
      });

      it('8 concurrent enqueues of the same dispatch_id → exactly one accepted, the rest AlreadyExists(id)', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) =>
            store().enqueue(makeDispatch('same-id', 't-cid', `r${i}`, 128, 1000 + i)),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') {
            expect((r.reason as StorageError).kind).toBe('AlreadyExists');
            expect((r.reason as StorageError).detail).toBe('same-id');
          }
        }
        expect(await store().countDispatchesByStatus('Queued')).toBe(1);
      });

      it('10 concurrent interrupts each get a distinct new epoch 1..10', async () => {
        await store().enqueue(makeDispatch('d1', 't-cint', 'r1', 128, 1000));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store().interruptDetailed('t-cint', 2000 + i)),
        );
        expect(results.map((r) => r.new_dispatch_epoch).sort((a, b) => a - b)).toEqual([
          1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        ]);
        expect(results.reduce((n, r) => n + r.superseded_count, 0)).toBe(1);
        expect(await store().currentDispatchEpoch('t-cint')).toBe(10);
      });

      it('concurrent ack and nack with the same token: exactly one succeeds', async () => {
        const claimed = await enqueueAndClaim(makeDispatch('d1', 't-cack', 'r1', 128, 1000));
        const results = await Promise.allSettled([
          store().ack('d1', token(claimed), 2000),
          store().nack('d1', token(claimed), 3000, 'e', 2000),
          store().deadLetter('d1', token(claimed), 'e', 2000),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const after = await load('d1');
        expect(['Acked', 'Queued', 'DeadLetter']).toContain(after.status);
        expectClaimClear(after);
      });
    });

    // ------------------------------------------------------------------------------------------------
    describe('bad-input sweep: Validation naming the field, records unchanged', () => {
      type Call = [label: string, field: string, args: unknown[]];

      /** Seed one Queued, one Claimed and one terminal dispatch; return the claim token. */
      async function seed(): Promise<void> {
        if ((await store().loadDispatch('d-bq')) !== null) return;
        await store().enqueue({ ...makeDispatch('d-bq', 't-bad', 'r-bq', 128, 1000), dedupe_key: 'bk' });
        await store().enqueue(makeDispatch('d-bc', 't-bad-c', 'r-bc', 128, 1000));
        await store().enqueue(makeDispatch('d-bt', 't-bad-t', 'r-bt', 128, 1000));
        await store().interrupt('t-bad-t', 1100);
        await claimOne('t-bad-c', 1000, 100); // its lease is expired at any now > 1100
      }

      async function snapshot(): Promise<unknown> {
        const s = store();
        const out: Record<string, unknown> = {};
        for (const id of ['d-bq', 'd-bc', 'd-bt', 'd-new']) out[`load:${id}`] = await s.loadDispatch(id);
        for (const t of ['t-bad', 't-bad-c', 't-bad-t', 't-new']) {
          out[`list:${t}`] = await s.listDispatches(t, null, 100, 0);
          out[`epoch:${t}`] = await s.currentDispatchEpoch(t);
        }
        for (const st of RUN_DISPATCH_STATUSES) out[`count:${st}`] = await s.countDispatchesByStatus(st);
        out.queued = await s.queuedThreadIds();
        out.terminal = await s.listTerminalDispatches(100, 0);
        return out;
      }

      async function sweep(method: keyof MailboxStore, calls: Call[]): Promise<void> {
        await seed();
        const before = await snapshot();
        const problems: string[] = [];
        for (const [label, field, args] of calls) {
          const s = store();
          const fn = (s as unknown as Record<string, unknown>)[method];
          if (typeof fn !== 'function') throw new Error(`store has no method ${method}`);
          let err: unknown;
          try {
            const value: unknown = await Reflect.apply(fn, s, args);
            if (value && typeof value === 'object' && 'close' in value && typeof value.close === 'function') {
              await (value as { close: () => Promise<void> }).close();
            }
            problems.push(`${method} ${label}: succeeded (returned ${JSON.stringify(value)})`);
            continue;
          } catch (e) {
            err = e;
          }
          if (!(err instanceof StorageError)) {
            problems.push(`${method} ${label}: threw a non-StorageError: ${String(err)}`);
          } else if (err.kind !== 'Validation') {
            problems.push(`${method} ${label}: kind ${err.kind} (${err.message}), expected Validation`);
          } else if (!err.message.includes(field)) {
            problems.push(`${method} ${label}: message "${err.message}" does not name "${field}"`);
          } else if (!err.message.startsWith('validation error: ')) {
            problems.push(`${method} ${label}: message "${err.message}" lacks the display prefix`);
          }
        }
        expect(problems).toEqual([]);
        expect(await snapshot()).toEqual(before);
      }

      const ID_BAD: [string, unknown][] = [
        ['empty', ''],
        ['blank', '   '],
        ['tab/newline', '\t\n'],
        ['number', 42],
        ['null', null],
        ['undefined', undefined],
        ['object', { id: 'x' }],
        ['too long', 'x'.repeat(5000)],
      ];
      const U64_BAD: [string, unknown][] = [
        ['negative', -1],
        ['fractional', 1.5],
        ['NaN', Number.NaN],
        ['Infinity', Number.POSITIVE_INFINITY],
        ['unsafe', UNSAFE],
        ['string', '1000'],
        ['null', null],
        ['bigint', 10n],
      ];
      /** For each bad value of one kind, the call with that value at `position`. */
      function vary(field: string, position: number, base: unknown[], bad: [string, unknown][]): Call[] {
        return bad.map(([label, value]) => {
          const args = [...base];
          args[position] = value;
          return [`${field}=${label}`, field, args];
        });
      }

      const baseDispatch = (): Record<string, unknown> => ({
        ...makeDispatch('d-new', 't-new', 'r-new', 128, 1000),
      });
      const withField = (field: string, value: unknown): Record<string, unknown> => ({
        ...baseDispatch(),
        [field]: value,
      });

      it('enqueue', async () => {
        const calls: Call[] = [
          ['null dispatch', 'dispatch', [null]],
          ['string dispatch', 'dispatch', ['d-new']],
          ['array dispatch', 'dispatch', [[]]],
          ['no args', 'dispatch', []],
        ];
        for (const f of ['dispatch_id', 'thread_id', 'run_id']) {
          for (const [label, value] of ID_BAD) calls.push([`${f}=${label}`, f, [withField(f, value)]]);
        }
        for (const f of [
          'created_at',
          'available_at',
          'updated_at',
          'dispatch_epoch',
          'attempt_count',
          'max_attempts',
        ]) {
          for (const [label, value] of U64_BAD) {
            calls.push([`${f}=${label}`, f, [withField(f, value)]]);
          }
        }
        for (const [label, value] of [...U64_BAD, ['256', 256] as [string, unknown]]) {
          calls.push([`priority=${label}`, 'priority', [withField('priority', value)]]);
        }
        calls.push(
          ['max_attempts=0', 'max_attempts', [withField('max_attempts', 0)]],
          [
            'attempt_count > max_attempts',
            'attempt_count',
            [{ ...baseDispatch(), attempt_count: 6, max_attempts: 5 }],
          ],
          ['status unknown', 'status', [withField('status', 'Running')]],
          ['status lowercase', 'status', [withField('status', 'queued')]],
          ['status Acked', 'must start as Queued', [withField('status', 'Acked')]],
          ['dedupe_key empty', 'dedupe_key', [withField('dedupe_key', '')]],
          ['dedupe_key blank', 'dedupe_key', [withField('dedupe_key', '  ')]],
          ['dedupe_key number', 'dedupe_key', [withField('dedupe_key', 7)]],
          ['last_error number', 'last_error', [withField('last_error', 7)]],
          ['claim_token set', 'claim fields', [withField('claim_token', 'tok')]],
          ['claimed_by set', 'claim fields', [withField('claimed_by', 'c')]],
          ['lease_until set', 'claim fields', [withField('lease_until', 5000)]],
          ['completed_at set', 'completed_at', [withField('completed_at', 5000)]],
          ['run_status set', 'runtime result fields', [withField('run_status', 'done')]],
          ['run_status unknown', 'run_status', [withField('run_status', 'finished')]],
          ['termination unknown', 'termination', [withField('termination', { type: 'exploded' })]],
          ['dispatch_instance_id set', 'runtime result fields', [withField('dispatch_instance_id', 'i')]],
          // An invalid record that reuses an existing id or dedupe key must fail validation, not AlreadyExists.
          [
            'existing id, bad priority',
            'priority',
            [{ ...makeDispatch('d-bq', 't-bad', 'r', 128, 1000), priority: 300 }],
          ],
          [
            'existing dedupe key, bad run_id',
            'run_id',
            [{ ...makeDispatch('d-new', 't-bad', '', 128, 1000), dedupe_key: 'bk' }],
          ],
        );
        await sweep('enqueue', calls);
      });

      it('claim', async () => {
        const base = ['t-bad', C1, LEASE, 5000, 10];
        await sweep('claim', [
          ...vary('thread_id', 0, base, ID_BAD),
          ...vary('consumer_id', 1, base, ID_BAD),
          ...vary('lease_ms', 2, base, U64_BAD),
          ...vary('now', 3, base, U64_BAD),
          ...vary('limit', 4, base, [...U64_BAD, ['above MAX_BATCH', MAX_BATCH + 1]]),
          ['now + lease_ms overflow', 'lease_ms', ['t-bad', C1, 100, Number.MAX_SAFE_INTEGER - 10, 10]],
        ]);
      });

      it('claimDispatch', async () => {
        const base = ['d-bq', C1, LEASE, 5000];
        await sweep('claimDispatch', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('consumer_id', 1, base, ID_BAD),
          ...vary('lease_ms', 2, base, U64_BAD),
          ...vary('now', 3, base, U64_BAD),
          ['now + lease_ms overflow', 'lease_ms', ['d-bq', C1, 100, Number.MAX_SAFE_INTEGER - 10]],
        ]);
      });

      it('ack', async () => {
        const base = ['d-bc', 'tok', 5000];
        await sweep('ack', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('now', 2, base, U64_BAD),
        ]);
      });

      it('recordDispatchStart', async () => {
        const base = ['d-bc', 'tok', 'inst', 5000];
        await sweep('recordDispatchStart', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('dispatch_instance_id', 2, base, ID_BAD),
          ...vary('now', 3, base, U64_BAD),
        ]);
      });

      it('recordRunResult', async () => {
        const good = { run_id: 'r-bc', dispatch_instance_id: 'i', status: 'done' };
        const base: unknown[] = ['d-bc', 'tok', good, 5000];
        await sweep('recordRunResult', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('now', 3, base, U64_BAD),
          ['result null', 'result', ['d-bc', 'tok', null, 5000]],
          ['result string', 'result', ['d-bc', 'tok', 'done', 5000]],
          ['result array', 'result', ['d-bc', 'tok', [], 5000]],
          ['result empty object', 'result', ['d-bc', 'tok', {}, 5000]],
          [
            'run_id missing',
            'result.run_id',
            ['d-bc', 'tok', { dispatch_instance_id: 'i', status: 'done' }, 5000],
          ],
          ['run_id blank', 'result.run_id', ['d-bc', 'tok', { ...good, run_id: ' ' }, 5000]],
          ['run_id number', 'result.run_id', ['d-bc', 'tok', { ...good, run_id: 5 }, 5000]],
          [
            'instance blank',
            'result.dispatch_instance_id',
            ['d-bc', 'tok', { ...good, dispatch_instance_id: '' }, 5000],
          ],
          ['status unknown', 'result.status', ['d-bc', 'tok', { ...good, status: 'finished' }, 5000]],
          ['status PascalCase', 'result.status', ['d-bc', 'tok', { ...good, status: 'Done' }, 5000]],
          [
            'termination unknown',
            'result.termination',
            ['d-bc', 'tok', { ...good, termination: { type: 'boom' } }, 5000],
          ],
          [
            'termination missing value',
            'result.termination',
            ['d-bc', 'tok', { ...good, termination: { type: 'error' } }, 5000],
          ],
          ['response number', 'result.response', ['d-bc', 'tok', { ...good, response: 5 }, 5000]],
          ['error object', 'result.error', ['d-bc', 'tok', { ...good, error: { m: 1 } }, 5000]],
        ]);
      });

      it('nack', async () => {
        const base = ['d-bc', 'tok', 6000, 'err', 5000];
        await sweep('nack', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('retry_at', 2, base, U64_BAD),
          ...vary('error', 3, base, [
            ['number', 5],
            ['null', null],
            ['object', {}],
          ]),
          ...vary('now', 4, base, U64_BAD),
        ]);
      });

      it('deadLetter', async () => {
        const base = ['d-bc', 'tok', 'err', 5000];
        await sweep('deadLetter', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('error', 2, base, [
            ['number', 5],
            ['undefined', undefined],
          ]),
          ...vary('now', 3, base, U64_BAD),
        ]);
      });

      it('cancel', async () => {
        const base = ['d-bq', 5000];
        await sweep('cancel', [...vary('dispatch_id', 0, base, ID_BAD), ...vary('now', 1, base, U64_BAD)]);
      });

      it('extendLease', async () => {
        const base = ['d-bc', 'tok', 1000, 5000];
        await sweep('extendLease', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('extension_ms', 2, base, U64_BAD),
          ...vary('now', 3, base, U64_BAD),
          ['now + extension_ms overflow', 'extension_ms', ['d-bc', 'tok', UNSAFE - 100, 5000]],
        ]);
      });

      it('interrupt and interruptDetailed', async () => {
        const base = ['t-bad', 5000];
        const calls = [...vary('thread_id', 0, base, ID_BAD), ...vary('now', 1, base, U64_BAD)];
        await sweep('interrupt', calls);
        const before = await snapshot();
        for (const [label, field, args] of calls) {
          const fn = (...a: unknown[]): Promise<unknown> =>
            Reflect.apply(store().interruptDetailed, store(), a) as Promise<unknown>;
          const err = await expectStorageError(() => fn(...args), 'Validation', `interruptDetailed ${label}`);
          expect(err.message, label).toContain(field);
        }
        expect(await snapshot()).toEqual(before);
      });

      it('currentDispatchEpoch', async () => {
        await sweep('currentDispatchEpoch', vary('thread_id', 0, ['t-bad'], ID_BAD));
      });

      it('supersedeClaimed', async () => {
        const base = ['d-bc', 'tok', 5000, 'reason'];
        await sweep('supersedeClaimed', [
          ...vary('dispatch_id', 0, base, ID_BAD),
          ...vary('claim_token', 1, base, ID_BAD),
          ...vary('now', 2, base, U64_BAD),
          ...vary('reason', 3, base, [
            ['number', 5],
            ['null', null],
          ]),
        ]);
      });

      it('loadDispatch', async () => {
        await sweep('loadDispatch', vary('dispatch_id', 0, ['d-bq'], ID_BAD));
      });

      it('listDispatches', async () => {
        const base: unknown[] = ['t-bad', null, 10, 0];
        await sweep('listDispatches', [
          ...vary('thread_id', 0, base, ID_BAD),
          ['filter string', 'status_filter', ['t-bad', 'Queued', 10, 0]],
          ['filter object', 'status_filter', ['t-bad', { Queued: true }, 10, 0]],
          ['filter unknown status', 'status_filter', ['t-bad', ['Queued', 'Running'], 10, 0]],
          ['filter lowercase status', 'status_filter', ['t-bad', ['queued'], 10, 0]],
          ['filter number', 'status_filter', ['t-bad', [1], 10, 0]],
          ...vary('limit', 2, base, [...U64_BAD, ['above MAX_BATCH', MAX_BATCH + 1]]),
          ...vary('offset', 3, base, [...U64_BAD, ['above MAX_OFFSET', MAX_OFFSET + 1]]),
        ]);
      });

      it('countDispatchesByStatus', async () => {
        await sweep('countDispatchesByStatus', [
          ['unknown', 'status', ['Running']],
          ['lowercase', 'status', ['queued']],
          ['snake_case', 'status', ['dead_letter']],
          ['empty', 'status', ['']],
          ['null', 'status', [null]],
          ['number', 'status', [1]],
        ]);
      });

      it('listTerminalDispatches', async () => {
        const base = [10, 0];
        await sweep('listTerminalDispatches', [
          ...vary('limit', 0, base, [...U64_BAD, ['above MAX_BATCH', MAX_BATCH + 1]]),
          ...vary('offset', 1, base, [...U64_BAD, ['above MAX_OFFSET', MAX_OFFSET + 1]]),
        ]);
      });

      it('reclaimExpiredLeases (an expired claim exists; bad input must not reclaim it)', async () => {
        const base = [1_000_000, 10];
        await sweep('reclaimExpiredLeases', [
          ...vary('now', 0, base, U64_BAD),
          ...vary('limit', 1, base, [...U64_BAD, ['above MAX_BATCH', MAX_BATCH + 1]]),
        ]);
      });

      it('purgeTerminal (a terminal record exists; bad input must not purge it)', async () => {
        await sweep('purgeTerminal', vary('older_than', 0, [1_000_000], U64_BAD));
      });

      it('pullDispatchSignals', async () => {
        const base = [10, 100];
        await sweep('pullDispatchSignals', [
          ...vary('max', 0, base, U64_BAD),
          ...vary('expires', 1, base, U64_BAD),
        ]);
      });

      it('deliverLive / deliverLiveTo', async () => {
        const goodTarget = { thread_id: 't-bad', run_id: 'r-bq' };
        const badCommands: [string, unknown][] = [
          ['unknown unit variant', 'Pause'],
          ['lowercase cancel', 'cancel'],
          ['unknown object variant', { Steer: [] }],
          ['Messages not an array', { Messages: 'hi' }],
          ['Messages bad role', { Messages: [{ role: 'robot', content: [] }] }],
          ['Decision bad tuple', { Decision: [['call_1']] }],
          ['two variants', { Messages: [], Decision: [] }],
          ['null', null],
          ['number', 1],
        ];
        await sweep('deliverLive', [
          ...vary('thread_id', 0, ['t-bad', 'Cancel'], ID_BAD),
          ...vary('command', 1, ['t-bad', 'Cancel'], badCommands),
        ]);
        await sweep('deliverLiveTo', [
          ['target null', 'target', [null, 'Cancel']],
          ['target string', 'target', ['t-bad', 'Cancel']],
          ['target missing run', 'target', [{ thread_id: 't-bad' }, 'Cancel']],
          ['target blank thread', 'target.thread_id', [{ thread_id: ' ', run_id: 'r' }, 'Cancel']],
          ['target blank run', 'target.run_id', [{ thread_id: 't', run_id: '' }, 'Cancel']],
          [
            'target blank dispatch',
            'target.dispatch_id',
            [{ thread_id: 't', run_id: 'r', dispatch_id: '' }, 'Cancel'],
          ],
          ['target numeric dispatch', 'target', [{ thread_id: 't', run_id: 'r', dispatch_id: 5 }, 'Cancel']],
          ...vary('command', 1, [goodTarget, 'Cancel'], badCommands),
        ]);
      });

      it('openLiveChannel / openLiveChannelFor', async () => {
        await sweep('openLiveChannel', vary('thread_id', 0, ['t-bad'], ID_BAD));
        await sweep('openLiveChannelFor', [
          ['target null', 'target', [null]],
          ['target array', 'target', [[]]],
          ['target blank thread', 'target.thread_id', [{ thread_id: '', run_id: 'r' }]],
          ['target blank run', 'target.run_id', [{ thread_id: 't', run_id: '  ' }]],
          [
            'target blank dispatch',
            'target.dispatch_id',
            [{ thread_id: 't', run_id: 'r', dispatch_id: ' ' }],
          ],
        ]);
      });
    });
  });
}

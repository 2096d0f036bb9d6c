/**
 * Store and Mailbox metrics on the memory store, read through the OpenTelemetry SDK's in-memory exporter.
 * The provider is passed explicitly (no global SDK in this file), so only what is instrumented here records.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { BATCH } from '../../src/metrics/batched-histogram.js';
import { METRIC, instrumentMailbox, instrumentStore } from '../../src/metrics/index.js';
import { eventually } from '../mailbox/wait.js';
import { testMetrics } from './reader.js';
import type { TestMetrics } from './reader.js';

const LEASE = 30_000;

function dispatch(id: string, thread: string, extra: Parameters<typeof queuedDispatch>[0] | object = {}) {
  const at = Date.now() - 60_000;
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `${id}-run`,
    created_at: at,
    ...extra,
  });
}

describe('metrics: memory store', () => {
  let m: TestMetrics;
  let store: MemoryMailboxStore;

  beforeEach(() => {
    m = testMetrics();
    // The sweeper never runs by itself here: the tests call sweepDueSignals when they mean it.
    store = new MemoryMailboxStore({ sweepIntervalMs: 3_600_000, republishAfterMs: 1 });
    expect(instrumentStore(store, { meterProvider: m.provider, backend: 'memory' })).toBe(true);
  });
  afterEach(async () => {
    await store.close();
    await m.shutdown();
  });

  it('counts claims by result, dedupe conflicts, lease renewals, reclaims and live deliveries', async () => {
    await store.enqueue(dispatch('d1', 't1', { dedupe_key: 'k' }));
    await expect(store.enqueue(dispatch('d2', 't1', { dedupe_key: 'k' }))).rejects.toMatchObject({
      kind: 'AlreadyExists',
    });
    const now = Date.now();
    const [claimed] = await store.claim('t1', 'c1', 100, now, 1);
    expect(await store.claim('t1', 'c1', LEASE, now, 1)).toEqual([]); // the thread is held
    await expect(store.claim('', 'c1', LEASE, now, 1)).rejects.toMatchObject({ kind: 'Validation' });
    const token = claimed?.claim_token as string;
    expect(await store.extendLease('d1', token, 100, now)).toBe(true);
    expect(await store.extendLease('d1', 'not-ours', 100, now)).toBe(false);
    const [reclaimed] = await store.reclaimExpiredLeases(now + 1_000, 10);
    expect(reclaimed?.status).toBe('Queued');
    expect(await store.deliverLive('t1', 'Cancel')).toBe('NoSubscriber');

    const s = await m.collect();
    expect(s.sum(METRIC.claimAttempt, { result: 'claimed' })).toBe(1);
    expect(s.sum(METRIC.claimAttempt, { result: 'no_eligible' })).toBe(1);
    expect(s.sum(METRIC.claimAttempt, { result: 'error' })).toBe(1);
    expect(s.sum(METRIC.dedupeConflict)).toBe(1);
    expect(s.sum(METRIC.leaseRenewal, { result: 'renewed' })).toBe(1);
    expect(s.sum(METRIC.leaseRenewal, { result: 'lost' })).toBe(1);
    expect(s.sum(METRIC.expiredClaimReclaimed, { status: 'Queued' })).toBe(1);
    expect(s.sum(METRIC.liveDelivery, { result: 'no_subscriber' })).toBe(1);
    expect(s.count(METRIC.storeOperationDuration, { operation: 'enqueue' })).toBe(2);
    expect(s.count(METRIC.storeOperationDuration, { operation: 'claim' })).toBe(3);
    expect(s.sum(METRIC.storeOperationErrors, { operation: 'enqueue', kind: 'AlreadyExists' })).toBe(1);
    expect(s.sum(METRIC.storeOperationErrors, { operation: 'claim', kind: 'Validation' })).toBe(1);
  });

  it('counts pulled signals, acks, nacks (delayed or not), redeliveries and republishes', async () => {
    await store.enqueue(dispatch('d1', 't1'));
    await store.enqueue(dispatch('d2', 't2'));
    const first = await store.pullDispatchSignals(10, 1_000);
    expect(first.map((e) => e.dispatch_id).sort()).toEqual(['d1', 'd2']);
    for (const e of first) await (e.dispatch_id === 'd1' ? e.receipt.nack() : e.receipt.ack());
    const again = await store.pullDispatchSignals(10, 1_000);
    expect(again.map((e) => e.dispatch_id)).toEqual(['d1']);
    expect(again[0]?.receipt.redeliveryAttempts()).toBe(2);
    await again[0]?.receipt.nackWithDelay(1);
    await eventually('the delayed signal', async () => {
      const batch = await store.pullDispatchSignals(10, 200);
      for (const e of batch) await e.receipt.ack();
      return batch.length > 0 || undefined;
    });
    // republishAfterMs is 1: both Queued dispatches are owed a signal again a moment later.
    const republished = await eventually('a republish', () => {
      const refs = store.sweepDueSignals(Date.now());
      return refs.length > 0 ? refs.length : undefined;
    });

    const s = await m.collect();
    expect(s.sum(METRIC.signalPulled)).toBe(4);
    expect(s.sum(METRIC.signalAck)).toBe(2);
    expect(s.sum(METRIC.signalNack, { delayed: false })).toBe(1);
    expect(s.sum(METRIC.signalNack, { delayed: true })).toBe(1);
    expect(s.sum(METRIC.signalRedelivery)).toBe(2);
    expect(s.sum(METRIC.signalRepublish)).toBe(republished);
  });

  it('reports dispatches by status and the age gauges', async () => {
    await store.enqueue(dispatch('d1', 't1'));
    await store.enqueue(dispatch('d2', 't2'));
    const leaseStart = Date.now() - 10_000;
    await store.claim('t1', 'c1', 1_000, leaseStart, 1); // lease ended 9 s ago, not reclaimed yet

    const s = await m.collect();
    expect(s.gauge(METRIC.dispatches, { status: 'Queued' })).toBe(1);
    expect(s.gauge(METRIC.dispatches, { status: 'Claimed' })).toBe(1);
    expect(s.gauge(METRIC.dispatches, { status: 'Acked' })).toBe(0);
    expect(s.gauge(METRIC.claimedLeaseAge)).toBeGreaterThanOrEqual(9_000);
    // d2 was signalled at enqueue; with republishAfterMs 1 it is owed another signal 1 ms later, and the
    // sweeper does not run here: the gauge grows with the time since then.
    await eventually('an overdue republish', async () => {
      const age = (await m.collect()).gauge(METRIC.queuedWithoutSignalAge) ?? 0;
      return age >= 1_500 || undefined;
    });

    await store.reclaimExpiredLeases(Date.now(), 10);
    store.sweepDueSignals(Date.now());
    const after = await m.collect();
    expect(after.gauge(METRIC.claimedLeaseAge)).toBe(0);
    expect(after.gauge(METRIC.queuedWithoutSignalAge)).toBeLessThan(1_000);
    expect(after.gauge(METRIC.dispatches, { status: 'Queued' })).toBe(2);
  });

  it('stops observing the gauges once the store is closed', async () => {
    expect((await m.collect()).gauge(METRIC.dispatches, { status: 'Queued' })).toBe(0);
    await store.close();
    const s = await m.collect();
    expect(s.gauge(METRIC.dispatches, { status: 'Queued' })).toBeUndefined();
  });

  it('records enqueue→start, run duration and outcomes from the Mailbox events', async () => {
    const mailbox = new Mailbox({
      store,
      executor: async (ctx) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return ctx.dispatch.run_id.startsWith('bad')
          ? { kind: 'fail', error: 'permanent' }
          : { kind: 'completed' };
      },
      config: { sweepIntervalMs: 3_600_000, gcIntervalMs: 3_600_000 },
    });
    expect(instrumentMailbox(mailbox, { meterProvider: m.provider })).toBe(true);
    let ended = 0;
    mailbox.on('completed', () => ended++);
    mailbox.on('deadLettered', () => ended++);
    await mailbox.start();
    try {
      for (let i = 0; i < 8; i++) {
        await mailbox.submitBackground({ threadId: `t${i % 3}`, runId: i < 6 ? `ok-${i}` : `bad-${i}` });
      }
      await eventually('every run ended', () => ended === 8 || undefined);
      const s = await m.collect();
      expect(s.count(METRIC.enqueueToStart)).toBe(8);
      expect(s.count(METRIC.runDuration, { outcome: 'completed' })).toBe(6);
      expect(s.count(METRIC.runDuration, { outcome: 'dead_lettered' })).toBe(2);
      expect(s.sum(METRIC.dispatchOutcome, { outcome: 'completed' })).toBe(6);
      expect(s.sum(METRIC.dispatchOutcome, { outcome: 'dead_lettered' })).toBe(2);
      expect(s.max(METRIC.runDuration, { outcome: 'completed' })).toBeGreaterThanOrEqual(4);
      expect(s.gauge(METRIC.activeRuns, { consumer: mailbox.consumerId })).toBe(0);
      expect(s.gauge(METRIC.dispatches, { status: 'Acked' })).toBe(6);
      expect(s.gauge(METRIC.dispatches, { status: 'DeadLetter' })).toBe(2);
    } finally {
      await mailbox.stop();
    }
    const stopped = await m.collect();
    expect(stopped.gauge(METRIC.activeRuns, { consumer: mailbox.consumerId })).toBeUndefined();
  });

  it('adds up the counts of several Mailboxes and stores of one process, also after they stop', async () => {
    // A second store of the same backend (no namespace): its series have the same attributes as `store`'s.
    const other = new MemoryMailboxStore({ sweepIntervalMs: 3_600_000 });
    expect(instrumentStore(other, { meterProvider: m.provider, backend: 'memory' })).toBe(true);
    let completed = 0;
    const mailboxes = [store, store, other].map((s, i) => {
      const mailbox = new Mailbox({
        store: s,
        consumerId: `node-${i}`,
        executor: async () => ({ kind: 'completed' }),
        config: { sweepIntervalMs: 3_600_000, gcIntervalMs: 3_600_000 },
      });
      expect(instrumentMailbox(mailbox, { meterProvider: m.provider })).toBe(true);
      mailbox.on('completed', () => completed++);
      return mailbox;
    });
    await Promise.all(mailboxes.map((mb) => mb.start()));
    try {
      for (let i = 0; i < 12; i++) {
        await mailboxes[i % 3]?.submitBackground({ threadId: `t${i}` });
      }
      await eventually('every run completed', () => completed === 12 || undefined);
      const s = await m.collect();
      expect(s.sum(METRIC.dispatchOutcome, { outcome: 'completed' })).toBe(12);
      expect(s.count(METRIC.runDuration, { outcome: 'completed' })).toBe(12);
      expect(s.sum(METRIC.claimAttempt, { result: 'claimed' })).toBe(12);
      expect(s.count(METRIC.storeOperationDuration, { operation: 'enqueue' })).toBe(12);
    } finally {
      await Promise.all(mailboxes.map((mb) => mb.stop()));
      await other.close();
    }
    // Totals of a cumulative counter never go down: what stopped Mailboxes and a closed store counted stays.
    const after = await m.collect();
    expect(after.sum(METRIC.dispatchOutcome, { outcome: 'completed' })).toBe(12);
    expect(after.sum(METRIC.claimAttempt, { result: 'claimed' })).toBe(12);
  });

  it('hands every duration to the SDK by the next collection, batched or not, and after the store closed', async () => {
    // More values than one batch of a series holds (BATCH), so both a full batch and the rest are flushed.
    const n = BATCH * 2 + 7;
    for (let i = 0; i < n; i++) await store.enqueue(dispatch(`d${i}`, `t${i}`));
    expect((await m.collect()).count(METRIC.storeOperationDuration, { operation: 'enqueue' })).toBe(n);
    await store.enqueue(dispatch('late', 't-late'));
    await store.close();
    // After close no collection callback is left to flush: a failed call on the closed store records at once.
    await expect(store.enqueue(dispatch('closed', 't-closed'))).rejects.toBeDefined();
    const s = await m.collect();
    expect(s.count(METRIC.storeOperationDuration, { operation: 'enqueue' })).toBe(n + 2);
    expect(s.sum(METRIC.storeOperationErrors, { operation: 'enqueue' })).toBe(1);
  });

  it('keeps the store contract: results, failures and synchronous answers reach the caller as before', async () => {
    await store.enqueue(dispatch('d1', 't1', { dedupe_key: 'k' }));
    const failed = store.enqueue(dispatch('d2', 't1', { dedupe_key: 'k' }));
    await expect(failed).rejects.toMatchObject({ kind: 'AlreadyExists' });
    const [claimed] = await store.claim('t1', 'c1', LEASE, Date.now(), 1);
    expect(claimed?.dispatch_id).toBe('d1');
    // The memory store's sweep answers synchronously, instrumented or not.
    expect(Array.isArray(store.sweepDueSignals(Date.now()))).toBe(true);
    const s = await m.collect();
    expect(s.count(METRIC.storeOperationDuration, { operation: 'sweepDueSignals' })).toBe(1);
  });
});

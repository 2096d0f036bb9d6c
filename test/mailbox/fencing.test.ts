/**
 * Fencing on the memory store, with faults injected into one node's store: a run whose lease can no longer be
 * proven is aborted (`lease-lost`) before its lease ends, one renewal error never ends renewal, and `stop()`
 * never hands a thread to another node while an executor of this process still runs on it. In every case no
 * two executions of one dispatch overlap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import type { Mailbox } from '../../src/mailbox/index.js';
import {
  Recorder,
  abortableSleep,
  behaviours,
  eventually,
  faultyStore,
  loadStatus,
  maxOverlap,
  newMailbox,
} from './harness.js';

describe('fencing (memory store, two nodes)', () => {
  const mailboxes: Mailbox[] = [];
  const stores: MemoryMailboxStore[] = [];

  afterEach(async () => {
    await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
    for (const s of stores.splice(0)) await s.close();
  });

  function memoryStore(): MemoryMailboxStore {
    const store = new MemoryMailboxStore({ sweepIntervalMs: 100, republishAfterMs: 500 });
    stores.push(store);
    return store;
  }

  /** A run of 4 s that honours its AbortSignal. */
  const fourSeconds = async (ctx: Parameters<ReturnType<typeof behaviours.quick>>[0]) => {
    await abortableSleep(4_000, ctx.signal);
    return { kind: 'completed' as const, termination: { type: 'natural_end' as const } };
  };

  it(
    'one renewal error does not end renewal: the run finishes on its node, never twice at once',
    { timeout: 20_000 },
    async () => {
      const store = memoryStore();
      // Node A's first renewal (its read of the thread's epoch and cancel request) fails once; the rest works.
      const flaky = faultyStore(store, 'readRunControl', (call) => call === 1);
      const recorder = new Recorder(fourSeconds);
      const config = { leaseMs: 1_500, sweepIntervalMs: 200 };
      const a = newMailbox(flaky, recorder, 'node-a', config);
      const b = newMailbox(store, recorder, 'node-b', config);
      mailboxes.push(a, b);
      await a.start();
      await b.start();

      const sub = await a.submit({ threadId: 'renew', runId: 'long' });
      const done = await loadStatus(store, sub.dispatchId, 'Acked', 10_000);
      expect(recorder.executions.map((e) => [e.consumer, e.abortReason])).toEqual([['node-a', null]]);
      expect(flaky.calls()).toBeGreaterThan(1);
      expect(done.attempt_count).toBe(0);
    },
  );

  it(
    'renewals that keep failing abort the run (lease-lost) before its lease ends; the next run starts after it ended',
    { timeout: 20_000 },
    async () => {
      const store = memoryStore();
      // Node A's renewals fail until its run is over (then it may take part again).
      const recorder = new Recorder(fourSeconds);
      const broken = faultyStore(store, 'readRunControl', () => recorder.executions[0]?.end == null);
      const config = { leaseMs: 1_500, sweepIntervalMs: 200 };
      const a = newMailbox(broken, recorder, 'node-a', config);
      const b = newMailbox(store, recorder, 'node-b', config);
      mailboxes.push(a, b);
      const leaseUntil: number[] = [];
      a.on('started', (d) => leaseUntil.push(d.lease_until ?? 0));
      await a.start();
      await b.start();

      const sub = await a.submit({ threadId: 'fenced', runId: 'doomed' });
      await loadStatus(store, sub.dispatchId, 'Acked', 15_000);
      const [first, second] = recorder.executions;
      expect(first).toMatchObject({ consumer: 'node-a', abortReason: 'lease-lost' });
      // Aborted, and done, before the lease it could no longer prove ran out.
      expect(first!.endedAt).toBeLessThan(leaseUntil[0]!);
      // The lease then expires and the sweep hands the dispatch on (an attempt spent: the run was cut short).
      expect(second).toMatchObject({ abortReason: null, attempt: 2 });
      expect(second!.startedAt).toBeGreaterThanOrEqual(first!.endedAt!);
      expect(maxOverlap(recorder.executions)).toBe(1);
    },
  );

  it(
    'stop() never hands a thread to another node while its executor, ignoring the abort, still runs',
    { timeout: 20_000 },
    async () => {
      const store = memoryStore();
      const recorder = new Recorder(behaviours.stubborn(2_000));
      const config = { leaseMs: 1_500, stopGraceMs: 200, sweepIntervalMs: 200 };
      const a = newMailbox(store, recorder, 'node-a', config);
      const b = newMailbox(store, recorder, 'node-b', config);
      mailboxes.push(a, b);
      await a.start();
      await b.start();
      const sub = await a.submit({ threadId: 'stubborn', runId: 'ignores-abort' });
      await eventually('the run to start', () => recorder.executions.length === 1);

      const t0 = Date.now();
      const report = await a.stop();
      const stopMs = Date.now() - t0;

      const done = await loadStatus(store, sub.dispatchId, 'Acked', 10_000);
      const [first, second] = recorder.executions;
      expect(first).toMatchObject({ consumer: 'node-a', abortReason: 'shutdown' });
      expect(second).toMatchObject({ consumer: 'node-b', attempt: 1 });
      expect(second!.startedAt).toBeGreaterThanOrEqual(first!.endedAt!);
      expect(maxOverlap(recorder.executions)).toBe(1);
      // Handed back once its executor returned: no attempt spent.
      expect(done.attempt_count).toBe(0);
      // stop() itself is bounded (grace + a short settle window) and says what it left behind.
      expect(stopMs).toBeLessThan(1_500);
      expect(report).toMatchObject({
        stillRunning: [{ dispatchId: sub.dispatchId, threadId: 'stubborn', runId: 'ignores-abort' }],
      });
    },
  );
});

/**
 * Dispatch-signal conformance (contract.md §8, design.md §3 item 3) for stores with durable wake-ups: the
 * memory store's in-process signals now, JetStream and Redis Streams later.
 *
 * Signal filtering compares `available_at` with the wall clock, so every `now` here is `Date.now()`.
 * Duplicate signals are harmless by design (a sweeper may republish), so the helpers ack and ignore
 * entries they are not looking for instead of failing on them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import type { DispatchSignalEntry } from '../../src/contract/types.js';
import type { MakeStore, StoreFixture } from './suite.js';
import { makeDispatch } from './suite.js';

export interface SignalConformanceOptions {
  /** Upper bound for a sweeper to republish a dispatch that became available later (default 10 s). */
  sweepWaitMs?: number;
}

/** Upper bound for a signal the store publishes directly (enqueue, nack redelivery). */
const DIRECT_MS = 5000;
/** A pull waits at most this long per request inside the helpers. */
const PULL_SLICE_MS = 1000;
/** Clock slack for "not before X ms" checks (timer and Date.now rounding). */
const SLACK_MS = 5;

interface Found {
  entry: DispatchSignalEntry;
  at: number;
}

/**
 * Pull until an entry matches (returned unacked) or `timeoutMs` passes (null). Every other entry is handed
 * to `observe` and then acked.
 */
async function pullUntil(
  store: MailboxStore,
  match: (e: DispatchSignalEntry) => boolean,
  timeoutMs: number,
  observe: (e: DispatchSignalEntry, at: number) => void = () => undefined,
): Promise<Found | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const wait = Math.max(50, Math.min(PULL_SLICE_MS, deadline - Date.now()));
    const batch = await store.pullDispatchSignals(16, wait);
    const at = Date.now();
    let found: DispatchSignalEntry | null = null;
    for (const entry of batch) {
      if (found === null && match(entry)) {
        found = entry;
      } else {
        observe(entry, at);
        await entry.receipt.ack();
      }
    }
    if (found) return { entry: found, at };
  }
  return null;
}

const forDispatch =
  (id: string, minAttempts = 1) =>
  (e: DispatchSignalEntry): boolean =>
    e.dispatch_id === id && (e.receipt.redeliveryAttempts() ?? 1) >= minAttempts;

export function describeSignalConformance(
  name: string,
  makeStore: MakeStore,
  options: SignalConformanceOptions = {},
): void {
  const sweepWaitMs = options.sweepWaitMs ?? 10_000;
  const slowTimeout = sweepWaitMs + 20_000;

  describe(`MailboxStore signal conformance: ${name}`, () => {
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

    /** Enqueue a dispatch that is available now (wall clock). */
    async function enqueueNow(id: string, thread: string): Promise<void> {
      await store().enqueue(makeDispatch(id, thread, `run-${id}`, 128, Date.now()));
    }

    async function firstSignal(id: string): Promise<Found> {
      const found = await pullUntil(store(), forDispatch(id), DIRECT_MS);
      if (!found) throw new Error(`no signal for ${id} within ${DIRECT_MS} ms`);
      return found;
    }

    it('supportsDispatchSignals() is true', () => {
      expect(store().supportsDispatchSignals()).toBe(true);
    });

    it('an enqueue produces a signal: thread_id, dispatch_id, redeliveryAttempts() === 1', async () => {
      await enqueueNow('d-sig', 't-sig');
      const { entry } = await firstSignal('d-sig');
      expect(entry.thread_id).toBe('t-sig');
      expect(entry.dispatch_id).toBe('d-sig');
      expect(entry.receipt.redeliveryAttempts()).toBe(1);
      await entry.receipt.ack();
    });

    it('signals carry exact ids, including awkward ones', async () => {
      const cases: [string, string][] = [
        ['d.1 *', 't.a >'],
        ['scope:3:abc:d', 'scope:3:abc:t'],
        ['dïspätch-🚀', '线程'],
      ];
      for (const [id, thread] of cases) await enqueueNow(id, thread);
      for (const [id, thread] of cases) {
        const { entry } = await firstSignal(id);
        expect(entry.thread_id).toBe(thread);
        await entry.receipt.ack();
      }
    });

    it('ack removes the signal', async () => {
      await enqueueNow('d-ack', 't-ack');
      const { entry } = await firstSignal('d-ack');
      // Claim it first, as the scheduler does: a Claimed dispatch is not republished by any sweeper, so a
      // later signal for it could only be the acked one coming back.
      expect(await store().claimDispatch('d-ack', 'consumer-1', 60_000, Date.now())).not.toBeNull();
      await entry.receipt.ack();
      expect(await pullUntil(store(), forDispatch('d-ack'), 1500)).toBeNull();
    });

    it('nack redelivers the signal with redeliveryAttempts() === 2', async () => {
      await enqueueNow('d-nack', 't-nack');
      const first = await firstSignal('d-nack');
      expect(first.entry.receipt.redeliveryAttempts()).toBe(1);
      await first.entry.receipt.nack();
      const again = await pullUntil(store(), forDispatch('d-nack', 2), DIRECT_MS);
      expect(again, 'redelivered after nack').not.toBeNull();
      expect(again?.entry.receipt.redeliveryAttempts()).toBe(2);
      expect(again?.entry.thread_id).toBe('t-nack');
      await again?.entry.receipt.ack();
    });

    it('nackWithDelay(200) is not redelivered before 200 ms, and is redelivered after', async () => {
      await enqueueNow('d-delay', 't-delay');
      const first = await firstSignal('d-delay');
      const nackedAt = Date.now();
      await first.entry.receipt.nackWithDelay(200);
      const again = await pullUntil(store(), forDispatch('d-delay', 2), DIRECT_MS);
      expect(again, 'redelivered after the delay').not.toBeNull();
      expect((again as Found).at - nackedAt).toBeGreaterThanOrEqual(200 - SLACK_MS);
      expect(again?.entry.receipt.redeliveryAttempts()).toBe(2);
      await again?.entry.receipt.ack();
    });

    it('a signal for a dispatch that became terminal is skipped (never returned)', async () => {
      await enqueueNow('d-gone', 't-gone');
      await enqueueNow('d-live', 't-gone-2');
      expect(await store().cancel('d-gone', Date.now())).not.toBeNull();
      const seenGone: number[] = [];
      const observe = (e: DispatchSignalEntry, at: number): void => {
        if (e.dispatch_id === 'd-gone') seenGone.push(at);
      };
      const live = await pullUntil(store(), forDispatch('d-live'), DIRECT_MS, observe);
      expect(live, 'the other dispatch is still signalled').not.toBeNull();
      await live?.entry.receipt.ack();
      expect(await pullUntil(store(), forDispatch('d-gone'), 1000, observe)).toBeNull();
      expect(seenGone).toEqual([]);
    });

    it('a signal for a dispatch terminalized after claim (acked run) is skipped', async () => {
      await enqueueNow('d-done', 't-done');
      const claimed = await store().claimDispatch('d-done', 'consumer-1', 60_000, Date.now());
      if (!claimed?.claim_token) throw new Error('claimDispatch failed');
      await store().ack('d-done', claimed.claim_token, Date.now());
      expect(await pullUntil(store(), forDispatch('d-done'), 1000)).toBeNull();
    });

    it(
      'a Queued dispatch with a future available_at is not returned before it is available, and is after',
      async () => {
        const now = Date.now();
        const availableAt = now + 1500;
        await store().enqueue({
          ...makeDispatch('d-later', 't-later', 'r1', 128, now),
          available_at: availableAt,
        });
        const early: number[] = [];
        const found = await pullUntil(
          store(),
          forDispatch('d-later'),
          1500 + sweepWaitMs,
          (e, at) => void (e.dispatch_id === 'd-later' && at < availableAt && early.push(at)),
        );
        expect(found, 'signalled once available').not.toBeNull();
        expect((found as Found).at).toBeGreaterThanOrEqual(availableAt);
        expect(early).toEqual([]);
        await found?.entry.receipt.ack();
      },
      slowTimeout,
    );

    it(
      'a nacked-with-retry dispatch is signalled again after retry_at without any new enqueue',
      async () => {
        await enqueueNow('d-retry', 't-retry');
        const { entry } = await firstSignal('d-retry');
        const claimed = await store().claimDispatch('d-retry', 'consumer-1', 60_000, Date.now());
        if (!claimed?.claim_token) throw new Error('claimDispatch failed');
        await entry.receipt.ack();
        const retryAt = Date.now() + 300;
        await store().nack('d-retry', claimed.claim_token, retryAt, 'transient', Date.now());
        const again = await pullUntil(store(), forDispatch('d-retry'), 300 + sweepWaitMs);
        expect(again, 'signalled after retry_at').not.toBeNull();
        expect((again as Found).at).toBeGreaterThanOrEqual(retryAt);
        expect(again?.entry.thread_id).toBe('t-retry');
        await again?.entry.receipt.ack();
        const reclaimed = await store().claim('t-retry', 'consumer-1', 60_000, Date.now(), 1);
        expect(reclaimed.map((d) => d.dispatch_id)).toEqual(['d-retry']);
      },
      slowTimeout,
    );

    it(
      'a lease-expiry requeue is signalled again',
      async () => {
        await enqueueNow('d-expire', 't-expire');
        const { entry } = await firstSignal('d-expire');
        const claimed = await store().claimDispatch('d-expire', 'consumer-1', 1, Date.now());
        expect(claimed).not.toBeNull();
        await entry.receipt.ack();
        await new Promise((resolve) => setTimeout(resolve, 20));
        const requeued = await store().reclaimExpiredLeases(Date.now(), 10);
        expect(requeued.map((d) => [d.dispatch_id, d.status])).toEqual([['d-expire', 'Queued']]);
        const again = await pullUntil(store(), forDispatch('d-expire'), sweepWaitMs);
        expect(again, 'signalled after the requeue').not.toBeNull();
        await again?.entry.receipt.ack();
      },
      slowTimeout,
    );

    it('pull honours max and every enqueued dispatch is signalled', async () => {
      const idsWanted = ['m0', 'm1', 'm2', 'm3', 'm4'];
      for (const id of idsWanted) await enqueueNow(id, `t-${id}`);
      const batch = await store().pullDispatchSignals(2, 2000);
      expect(batch.length).toBeGreaterThan(0);
      expect(batch.length).toBeLessThanOrEqual(2);
      const seen = new Set(batch.map((e) => e.dispatch_id));
      await Promise.all(batch.map((e) => e.receipt.ack()));
      const deadline = Date.now() + DIRECT_MS;
      while (seen.size < idsWanted.length && Date.now() < deadline) {
        const more = await store().pullDispatchSignals(2, 500);
        expect(more.length).toBeLessThanOrEqual(2);
        for (const e of more) {
          seen.add(e.dispatch_id);
          await e.receipt.ack();
        }
      }
      expect([...seen].sort()).toEqual(idsWanted);
    });

    it('pull with nothing queued returns [] after about expiresMs, without a busy loop', async () => {
      const expiresMs = 1000;
      const cpuBefore = process.cpuUsage();
      const start = Date.now();
      const entries = await store().pullDispatchSignals(10, expiresMs);
      const elapsed = Date.now() - start;
      const cpu = process.cpuUsage(cpuBefore);
      expect(entries).toEqual([]);
      expect(elapsed).toBeGreaterThanOrEqual(expiresMs / 2);
      expect(elapsed).toBeLessThan(expiresMs + 4000);
      // A busy loop would burn about as much CPU as wall time; a blocking wait burns almost none.
      expect((cpu.user + cpu.system) / 1000).toBeLessThan(elapsed / 2);
    });
  });
}

/**
 * Transport-level cases shared by the JetStream and Redis Streams signal transports: each case opens its
 * own namespace, so cases never see each other's signals, and destroys it afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RawSignal, SignalRef, SignalTransport } from '../../src/signals/transport.js';
import { testNamespace } from '../support/servers.js';

export type DestroyableTransport = SignalTransport & { destroy(): Promise<void> };

export interface TransportHarness {
  /** A new puller of `namespace` (its own connection / consumer name). */
  open(namespace: string): Promise<DestroyableTransport>;
  /** Write a signal with an empty dispatch id straight to the namespace's queue (bypassing publish). */
  plantBlank(namespace: string, threadId: string): Promise<void>;
}

export interface Received {
  signal: RawSignal;
  at: number;
  by: number;
}

/** Pull on `t` until `match` is seen (returned unsettled) or `timeoutMs` passes; others are acked. */
export async function pullUntil(
  t: SignalTransport,
  match: (s: RawSignal) => boolean,
  timeoutMs: number,
  onOther: (s: RawSignal) => void = () => undefined,
): Promise<{ signal: RawSignal; at: number } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const batch = await t.pull(16, Math.max(20, Math.min(1000, deadline - Date.now())));
    const at = Date.now();
    let found: RawSignal | null = null;
    for (const s of batch) {
      if (found === null && match(s)) found = s;
      else {
        onOther(s);
        await s.receipt.ack();
      }
    }
    if (found) return { signal: found, at };
  }
  return null;
}

const byDispatch =
  (id: string, minAttempts = 1) =>
  (s: RawSignal): boolean =>
    s.dispatch_id === id && (s.receipt.redeliveryAttempts() ?? 1) >= minAttempts;

export function describeTransportSuite(name: string, harness: () => TransportHarness): void {
  describe(`signal transport: ${name}`, () => {
    const opened: DestroyableTransport[] = [];
    const namespaces: string[] = [];

    async function open(ns: string): Promise<DestroyableTransport> {
      const t = await harness().open(ns);
      opened.push(t);
      return t;
    }
    function namespace(label: string): string {
      const ns = testNamespace(`sig-${label}`);
      namespaces.push(ns);
      return ns;
    }

    afterEach(async () => {
      for (const t of opened.splice(0)) await t.close().catch(() => undefined);
      for (const ns of namespaces.splice(0)) {
        const t = await harness().open(ns);
        await t.destroy();
      }
    });

    it('a published signal carries thread_id, dispatch_id and redeliveryAttempts() === 1', async () => {
      const t = await open(namespace('basic'));
      await t.publish([{ thread_id: 't1', dispatch_id: 'd1' }]);
      const got = await pullUntil(t, byDispatch('d1'), 5000);
      expect(got).not.toBeNull();
      expect(got?.signal.thread_id).toBe('t1');
      expect(got?.signal.receipt.redeliveryAttempts()).toBe(1);
      await got?.signal.receipt.ack();
      expect(await t.pull(10, 300)).toEqual([]);
    });

    it('awkward ids route exactly (dots, wildcards, spaces, Unicode, a 4096-character thread id)', async () => {
      const t = await open(namespace('ids'));
      const refs: SignalRef[] = [
        { thread_id: 't.a >', dispatch_id: 'd.1 *' },
        { thread_id: 'scope:3:abc:t', dispatch_id: 'scope:3:abc:d' },
        { thread_id: '线程', dispatch_id: 'dïspätch-🚀' },
        { thread_id: '🚀'.repeat(2048), dispatch_id: 'long-thread' },
        { thread_id: 'x', dispatch_id: 'é'.repeat(4096) },
      ];
      await t.publish(refs);
      const seen = new Map<string, string>();
      const deadline = Date.now() + 5000;
      while (seen.size < refs.length && Date.now() < deadline) {
        for (const s of await t.pull(10, 500)) {
          seen.set(s.dispatch_id, s.thread_id);
          await s.receipt.ack();
        }
      }
      expect(seen).toEqual(new Map(refs.map((r) => [r.dispatch_id, r.thread_id])));
    });

    it('each signal reaches exactly one of several concurrent pullers', async () => {
      const ns = namespace('one');
      const pullers = [await open(ns), await open(ns), await open(ns)];
      const total = 60;
      const received: Received[] = [];
      let stop = false;
      const loops = pullers.map(async (p, by) => {
        while (!stop) {
          for (const s of await p.pull(8, 200)) {
            received.push({ signal: s, at: Date.now(), by });
            await s.receipt.ack();
          }
        }
      });
      const refs = Array.from({ length: total }, (_, i) => ({
        thread_id: `t${i % 7}`,
        dispatch_id: `d${i}`,
      }));
      for (let i = 0; i < total; i += 10) {
        await pullers[(i / 10) % 3]?.publish(refs.slice(i, i + 10));
        await new Promise((r) => setTimeout(r, 20));
      }
      const deadline = Date.now() + 10_000;
      while (received.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // Give a duplicate a chance to show up before stopping.
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(loops);
      const ids = received.map((r) => r.signal.dispatch_id).sort();
      expect(ids).toEqual(refs.map((r) => r.dispatch_id).sort());
      expect(new Set(received.map((r) => r.by)).size, 'work spread over pullers').toBeGreaterThan(1);
    });

    it('nack redelivers with redeliveryAttempts() === 2', async () => {
      const t = await open(namespace('nack'));
      await t.publish([{ thread_id: 't-nack', dispatch_id: 'd-nack' }]);
      const first = await pullUntil(t, byDispatch('d-nack'), 5000);
      expect(first?.signal.receipt.redeliveryAttempts()).toBe(1);
      await first?.signal.receipt.nack();
      const again = await pullUntil(t, byDispatch('d-nack'), 5000);
      expect(again, 'redelivered').not.toBeNull();
      expect(again?.signal.receipt.redeliveryAttempts()).toBe(2);
      expect(again?.signal.thread_id).toBe('t-nack');
      await again?.signal.receipt.nack();
      const third = await pullUntil(t, byDispatch('d-nack'), 5000);
      expect(third?.signal.receipt.redeliveryAttempts()).toBe(3);
      await third?.signal.receipt.ack();
      expect(await pullUntil(t, byDispatch('d-nack'), 500)).toBeNull();
    });

    it('nackWithDelay(200) is redelivered after >= 200 ms and not before', async () => {
      const t = await open(namespace('delay'));
      await t.publish([{ thread_id: 't-delay', dispatch_id: 'd-delay' }]);
      const first = await pullUntil(t, byDispatch('d-delay'), 5000);
      const nackedAt = Date.now();
      await first?.signal.receipt.nackWithDelay(200);
      const again = await pullUntil(t, byDispatch('d-delay'), 5000);
      expect(again, 'redelivered').not.toBeNull();
      expect((again?.at ?? 0) - nackedAt).toBeGreaterThanOrEqual(195);
      expect(again?.signal.receipt.redeliveryAttempts()).toBe(2);
      await again?.signal.receipt.ack();
    });

    it('a blocked pull wakes when a signal arrives, and when a delayed signal becomes due', async () => {
      const ns = namespace('wake');
      const puller = await open(ns);
      const producer = await open(ns);
      const started = Date.now();
      const pending = puller.pull(10, 8000);
      await new Promise((r) => setTimeout(r, 100));
      await producer.publish([{ thread_id: 't-wake', dispatch_id: 'd-wake' }]);
      const got = await pending;
      expect(got.map((s) => s.dispatch_id)).toEqual(['d-wake']);
      expect(Date.now() - started, 'returned long before expires').toBeLessThan(4000);
      const nackedAt = Date.now();
      await got[0]?.receipt.nackWithDelay(300);
      const again = await puller.pull(10, 8000);
      expect(again.map((s) => s.dispatch_id)).toEqual(['d-wake']);
      const waited = Date.now() - nackedAt;
      expect(waited).toBeGreaterThanOrEqual(295);
      expect(waited, 'woke near the due time, not at expires').toBeLessThan(4000);
      await again[0]?.receipt.ack();
    });

    it('a signal published while no puller runs is delivered when one starts', async () => {
      const ns = namespace('offline');
      const producer = await open(ns);
      await producer.publish([{ thread_id: 't-off', dispatch_id: 'd-off' }]);
      await producer.close();
      await new Promise((r) => setTimeout(r, 200));
      const late = await open(ns);
      const got = await pullUntil(late, byDispatch('d-off'), 5000);
      expect(got?.signal.thread_id).toBe('t-off');
      await got?.signal.receipt.ack();
    });

    it('signals of one namespace never reach another', async () => {
      const a = await open(namespace('iso-a'));
      const b = await open(namespace('iso-b'));
      await a.publish([{ thread_id: 't-iso', dispatch_id: 'd-iso' }]);
      const seenByB: string[] = [];
      expect(
        await pullUntil(
          b,
          () => true,
          800,
          (s) => seenByB.push(s.dispatch_id),
        ),
      ).toBeNull();
      expect(seenByB).toEqual([]);
      const got = await pullUntil(a, byDispatch('d-iso'), 5000);
      expect(got).not.toBeNull();
      await got?.signal.receipt.ack();
    });

    it('pull honours max', async () => {
      const t = await open(namespace('max'));
      await t.publish(Array.from({ length: 5 }, (_, i) => ({ thread_id: 't', dispatch_id: `m${i}` })));
      await new Promise((r) => setTimeout(r, 100));
      const seen = new Set<string>();
      const deadline = Date.now() + 5000;
      while (seen.size < 5 && Date.now() < deadline) {
        const batch = await t.pull(2, 500);
        expect(batch.length).toBeLessThanOrEqual(2);
        for (const s of batch) {
          seen.add(s.dispatch_id);
          await s.receipt.ack();
        }
      }
      expect([...seen].sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(await t.pull(0, 1000)).toEqual([]);
    });

    it('a blank signal is acked and skipped', async () => {
      const ns = namespace('blank');
      const t = await open(ns);
      await harness().plantBlank(ns, 't-blank');
      await t.publish([{ thread_id: 't-ok', dispatch_id: 'd-ok' }]);
      const other: string[] = [];
      const got = await pullUntil(t, byDispatch('d-ok'), 5000, (s) => other.push(s.dispatch_id));
      expect(got).not.toBeNull();
      await got?.signal.receipt.ack();
      expect(other).toEqual([]);
      // Acked, not merely skipped: nothing comes back.
      expect(await t.pull(10, 500)).toEqual([]);
    });

    it('pull with nothing queued returns [] after about expiresMs, without a busy loop', async () => {
      const t = await open(namespace('idle'));
      const cpuBefore = process.cpuUsage();
      const start = Date.now();
      const entries = await t.pull(10, 1000);
      const elapsed = Date.now() - start;
      const cpu = process.cpuUsage(cpuBefore);
      expect(entries).toEqual([]);
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(5000);
      expect((cpu.user + cpu.system) / 1000).toBeLessThan(elapsed / 4);
    });

    it('rejects bad pull arguments with Validation', async () => {
      const t = await open(namespace('args'));
      for (const [max, expires] of [
        [-1, 10],
        [1.5, 10],
        [1, -1],
        [1, Number.NaN],
        [1_000_000, 10],
      ] as const) {
        const err = await t.pull(max, expires).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).kind).toBe('Validation');
      }
    });

    it('close ends a blocked pull promptly', async () => {
      const t = await open(namespace('close'));
      const started = Date.now();
      const pending = t.pull(10, 20_000).then(
        (v) => v,
        () => [],
      );
      await new Promise((r) => setTimeout(r, 200));
      await t.close();
      expect(await pending).toEqual([]);
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });
}

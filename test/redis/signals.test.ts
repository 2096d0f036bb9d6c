/**
 * Signal bookkeeping of the Redis store: with Redis Streams the state-changing script itself XADDs the
 * signal; with JetStream the store publishes after the write (best effort); the due index feeds
 * `sweepDueSignals`; `pullDispatchSignals` filters with one batched load.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DispatchSignalReceipt } from '../../src/contract/types.js';
import { NoLiveChannel } from '../../src/redis/no-live.js';
import { ScriptRunner } from '../../src/redis/scripts.js';
import { RedisMailboxStore, redisKeys } from '../../src/redis/index.js';
import type { RawSignal, SignalRef, SignalTransport } from '../../src/signals/transport.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { dispatch, openFixture, type RedisFixture } from './helpers.js';

const R = 30_000;

async function streamEntries(raw: Redis, key: string): Promise<[string, string][]> {
  const entries = await raw.xrange(key, '-', '+');
  return entries.map(([, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    return [f.t as string, f.d as string];
  });
}

describe('Redis Streams: the script that makes a dispatch claimable XADDs its signal', () => {
  let fx: RedisFixture;
  beforeAll(async () => {
    // A sweeper that never ticks during the test, so every entry comes from a store write.
    fx = await openFixture('redis-xadd', {
      signals: 'redis-streams',
      sweepIntervalMs: 3_600_000,
      republishAfterMs: R,
    });
  });
  afterAll(async () => {
    await fx.cleanup();
  });

  it('enqueue, nack → Queued and reclaim → Queued signal; nothing else does', async () => {
    const key = fx.store.keys.signalStream;
    await fx.store.enqueue(dispatch('d1', 't1', 1000, { max_attempts: 3 }));
    expect(await streamEntries(fx.raw, key)).toEqual([['t1', 'd1']]);

    let [c] = await fx.store.claim('t1', 'c', 100, 1000, 1);
    await fx.store.nack('d1', c?.claim_token as string, 1500, 'retry', 1100); // → Queued
    expect(await fx.store.claim('t1', 'c', 100, 1500, 1)).toHaveLength(1);
    expect(await fx.store.reclaimExpiredLeases(2000, 10)).toHaveLength(1); // → Queued
    [c] = await fx.store.claim('t1', 'c', 100, 2000, 1);
    await fx.store.nack('d1', c?.claim_token as string, 3000, 'last', 2100); // → DeadLetter
    expect(await streamEntries(fx.raw, key)).toEqual([
      ['t1', 'd1'],
      ['t1', 'd1'],
      ['t1', 'd1'],
    ]);

    await fx.store.enqueue(dispatch('d2', 't2'));
    await fx.store.enqueue(dispatch('d3', 't3'));
    await fx.store.cancel('d2', 2000);
    await fx.store.interrupt('t3', 2000);
    const [c4] = await (async () => {
      await fx.store.enqueue(dispatch('d4', 't4'));
      return fx.store.claim('t4', 'c', 100, 1000, 1);
    })();
    await fx.store.ack('d4', c4?.claim_token as string, 1100);
    expect((await streamEntries(fx.raw, key)).slice(3)).toEqual([
      ['t2', 'd2'],
      ['t3', 'd3'],
      ['t4', 'd4'],
    ]);
  });
});

describe('due index and sweepDueSignals', () => {
  let fx: RedisFixture;
  beforeAll(async () => {
    fx = await openFixture('redis-due', {
      signals: 'redis-streams',
      sweepIntervalMs: 3_600_000,
      republishAfterMs: R,
    });
  });
  afterAll(async () => {
    await fx.cleanup();
  });

  it('republishes a Queued, available dispatch only once its last signal is older than the delay', async () => {
    const wall = Date.now();
    await fx.store.enqueue(dispatch('s1', 't-s1', 1000));
    await fx.store.enqueue(dispatch('s-later', 't-later', 1000, { available_at: wall + 10 * R }));
    const before = (await streamEntries(fx.raw, fx.store.keys.signalStream)).length;
    expect(await fx.store.sweepDueSignals(wall, R, 100)).toEqual([]);
    const due = wall + R + 5000;
    expect(await fx.store.sweepDueSignals(due, R, 100)).toEqual([{ thread_id: 't-s1', dispatch_id: 's1' }]);
    // Marked signalled at `due`: not again until due + R.
    expect(await fx.store.sweepDueSignals(due, R, 100)).toEqual([]);
    expect(await fx.store.sweepDueSignals(due + R - 1, R, 100)).toEqual([]);
    expect(await fx.store.sweepDueSignals(due + R, R, 100)).toEqual([
      { thread_id: 't-s1', dispatch_id: 's1' },
    ]);
    // The sweep wrote the signals itself (Redis Streams).
    expect((await streamEntries(fx.raw, fx.store.keys.signalStream)).slice(before)).toEqual([
      ['t-s1', 's1'],
      ['t-s1', 's1'],
    ]);
    // Not available yet → never swept; available → swept.
    expect(
      (await fx.store.sweepDueSignals(wall + 10 * R - 1, R, 100)).map((r) => r.dispatch_id),
    ).not.toContain('s-later');
    expect((await fx.store.sweepDueSignals(wall + 10 * R, R, 100)).map((r) => r.dispatch_id)).toContain(
      's-later',
    );
  });

  it('claimed or terminal dispatches leave the due index; limit is honoured', async () => {
    const wall = Date.now();
    for (let i = 0; i < 5; i++) await fx.store.enqueue(dispatch(`l${i}`, `t-l${i}`, 1000));
    await fx.store.claim('t-l0', 'c', 1000, 1000, 1);
    await fx.store.cancel('l1', 1000);
    const far = wall + 100 * R;
    const first = await fx.store.sweepDueSignals(far, R, 2);
    const second = await fx.store.sweepDueSignals(far, R, 100);
    const swept = [...first, ...second].map((r) => r.dispatch_id).filter((d) => d.startsWith('l'));
    expect(first).toHaveLength(2);
    expect(swept.sort()).toEqual(['l2', 'l3', 'l4']);
    expect(await fx.raw.zscore(fx.store.keys.due, 'l0')).toBeNull();
    expect(await fx.raw.zscore(fx.store.keys.due, 'l1')).toBeNull();
  });

  it("with signals 'none' the sweep answers but no stream is ever written", async () => {
    const none = await openFixture('redis-due-none', { republishAfterMs: R });
    await none.store.enqueue(dispatch('n1', 't-n1'));
    expect(await none.store.sweepDueSignals(Date.now() + 2 * R, R, 10)).toEqual([
      { thread_id: 't-n1', dispatch_id: 'n1' },
    ]);
    expect(await none.raw.exists(none.store.keys.signalStream)).toBe(0);
    await none.cleanup();
  });
});

/** A JetStream-like transport that records publishes and serves scripted pulls. */
class FakeTransport implements SignalTransport {
  readonly kind = 'jetstream' as const;
  published: SignalRef[] = [];
  failPublish = false;
  next: RawSignal[] = [];
  async publish(signals: readonly SignalRef[]): Promise<void> {
    if (this.failPublish) throw new Error('nats: no responders (password=hunter2)');
    this.published.push(...signals);
  }
  async pull(): Promise<RawSignal[]> {
    const out = this.next;
    this.next = [];
    return out;
  }
  async close(): Promise<void> {}
}

class RecordingReceipt implements DispatchSignalReceipt {
  outcome: string | null = null;
  redeliveryAttempts(): number | null {
    return 1;
  }
  async ack(): Promise<void> {
    this.outcome = 'ack';
  }
  async nack(): Promise<void> {
    this.outcome = 'nack';
  }
  async nackWithDelay(ms: number): Promise<void> {
    this.outcome = `delay:${ms}`;
  }
}

describe('JetStream mode: publish after the write, best effort; pull filters with one batched load', () => {
  const transport = new FakeTransport();
  const warnings: unknown[] = [];
  let store: RedisMailboxStore;
  let raw: Redis;

  beforeAll(async () => {
    raw = new Redis(await redisUrl());
    const keys = redisKeys(testNamespace('redis-fake-js'));
    store = new RedisMailboxStore({
      redis: raw,
      scripts: new ScriptRunner(raw),
      keys,
      signals: 'jetstream',
      transport,
      live: new NoLiveChannel(),
      commandTimeoutMs: 3000,
      republishAfterMs: R,
      secrets: ['hunter2'],
      logger: { warn: (msg, fields) => warnings.push({ msg, fields }) },
    });
  });
  afterAll(async () => {
    await store.destroyNamespace();
    await store.close();
    raw.disconnect();
  });

  it('enqueue, nack → Queued and reclaim → Queued publish; others do not; nothing is XADDed', async () => {
    await store.enqueue(dispatch('j1', 'tj', 1000, { max_attempts: 2 }));
    let [c] = await store.claim('tj', 'c', 100, 1000, 1);
    await store.nack('j1', c?.claim_token as string, 1000, 'retry', 1100);
    [c] = await store.claim('tj', 'c', 100, 1200, 1);
    await store.nack('j1', c?.claim_token as string, 1000, 'done', 1300); // DeadLetter: no publish
    await store.enqueue(dispatch('j2', 'tj2', 1000));
    await store.claim('tj2', 'c', 100, 1000, 1);
    await store.reclaimExpiredLeases(5000, 10);
    expect(transport.published).toEqual([
      { thread_id: 'tj', dispatch_id: 'j1' },
      { thread_id: 'tj', dispatch_id: 'j1' },
      { thread_id: 'tj2', dispatch_id: 'j2' },
      { thread_id: 'tj2', dispatch_id: 'j2' },
    ]);
    expect(await raw.exists(store.keys.signalStream)).toBe(0);
  });

  it('a failing publish never fails the write, and the warning carries no secret', async () => {
    transport.failPublish = true;
    await store.enqueue(dispatch('j3', 'tj3', 1000));
    transport.failPublish = false;
    expect((await store.loadDispatch('j3'))?.status).toBe('Queued');
    expect(JSON.stringify(warnings)).toContain('j3');
    expect(JSON.stringify(warnings)).not.toContain('hunter2');
  });

  it('pull: missing / terminal → ack; soon available → nackWithDelay; far off → ack (sweeper); available → returned', async () => {
    const now = Date.now();
    await store.enqueue(dispatch('p-ok', 'tp', 1000));
    await store.enqueue(dispatch('p-soon', 'tp2', 1000, { available_at: now + 20_000 }));
    await store.enqueue(dispatch('p-later', 'tp4', 1000, { available_at: now + 60_000 }));
    await store.enqueue(dispatch('p-gone', 'tp3', 1000));
    await store.cancel('p-gone', 1000);
    const receipts = ['p-ok', 'p-soon', 'p-gone', 'p-missing', 'p-later'].map(() => new RecordingReceipt());
    transport.next = ['p-ok', 'p-soon', 'p-gone', 'p-missing', 'p-later'].map((d, i) => ({
      thread_id: 'whatever',
      dispatch_id: d,
      receipt: receipts[i] as RecordingReceipt,
    }));
    const entries = await store.pullDispatchSignals(10, 100);
    expect(entries.map((e) => [e.thread_id, e.dispatch_id])).toEqual([['tp', 'p-ok']]);
    expect(receipts[0]?.outcome).toBeNull();
    expect(receipts[1]?.outcome).toMatch(/^delay:\d+$/);
    const delay = Number(receipts[1]?.outcome?.slice(6));
    expect(delay).toBeGreaterThan(10_000);
    expect(delay).toBeLessThanOrEqual(20_000);
    expect(receipts[2]?.outcome).toBe('ack');
    expect(receipts[3]?.outcome).toBe('ack');
    // more than MAX_PARKED_SIGNAL_MS away: acked, the sweeper signals it once it is available
    expect(receipts[4]?.outcome).toBe('ack');
  });

  it('pull: a corrupt record or an invalid id only drops its own signal (acked, warned)', async () => {
    await store.enqueue(dispatch('c-ok', 'tc', 1000));
    await store.enqueue(dispatch('c-bad', 'tc2', 1000));
    await raw.hset(store.keys.record('c-bad'), 'status', 'Exploded');
    const ids = ['c-ok', 'c-bad', '   ', 'x\uD800'];
    const receipts = ids.map(() => new RecordingReceipt());
    transport.next = ids.map((d, i) => ({
      thread_id: 't',
      dispatch_id: d,
      receipt: receipts[i] as RecordingReceipt,
    }));
    const entries = await store.pullDispatchSignals(10, 100);
    expect(entries.map((e) => e.dispatch_id)).toEqual(['c-ok']);
    expect(receipts.slice(1).map((r) => r.outcome)).toEqual(['ack', 'ack', 'ack']);
    expect(JSON.stringify(warnings)).toContain('c-bad');
  });
});

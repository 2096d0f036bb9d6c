/**
 * Key layout: keys.ts is the one builder, the Lua prelude derives the same names (checked here against
 * what a real lifecycle leaves in Redis), every key of a namespace shares one hash tag, awkward ids never
 * collide, and records are plain hashes readable with HGETALL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { redisKeys, orderKey, terminalKey } from '../../src/redis/index.js';
import { dispatch, namespaceKeys, openFixture, type RedisFixture } from './helpers.js';

describe('redisKeys', () => {
  it('prefixes: awaken:{<ns>}: with a namespace, awaken:{@default}: without', () => {
    expect(redisKeys(null).prefix).toBe('awaken:{@default}:');
    expect(redisKeys('tenant_A-1').prefix).toBe('awaken:{tenant_A-1}:');
    const k = redisKeys('ns');
    expect(k.record('d1')).toBe('awaken:{ns}:d:d1');
    expect(k.thread('t1')).toBe('awaken:{ns}:th:t1');
    expect(k.byStatus('Queued', 't1')).toBe('awaken:{ns}:ts:Queued:t1');
    expect(k.signalStream).toBe('awaken:{ns}:sig:stream');
    expect(k.signalDelayed).toBe('awaken:{ns}:sig:delayed');
    expect(k.signalGroup).toBe('awaken-dispatch');
    expect(k.pattern).toBe('awaken:{ns}:*');
    expect(k.scriptGlobals[0]).toBe(k.prefix);
  });

  it('rejects namespaces outside letters, digits, _ and -', () => {
    for (const bad of ['', 'a b', 'a:b', 'a{b', 'a}b', 'ns.*', '@default', 'x'.repeat(65)]) {
      expect(() => redisKeys(bad), bad).toThrow(StorageError);
    }
  });

  it('every key of a namespace carries its hash tag as the first {...} (one cluster slot)', () => {
    const k = redisKeys('slot-test');
    const ids = ['plain', 'with{brace}', '}{', 'a:b', '线程'];
    const all = [
      ...k.scriptGlobals,
      k.signalDelayed,
      ...ids.flatMap((i) => [
        k.record(i),
        k.thread(i),
        k.ready(i),
        k.waiting(i),
        k.byStatus('Acked', i),
        k.dedupe(i),
        k.staleQueued(i),
      ]),
    ];
    for (const key of all) {
      const open = key.indexOf('{');
      const close = key.indexOf('}', open + 1);
      expect(key.slice(open, close + 1), key).toBe(k.hashTag);
    }
  });

  it('order and terminal keys sort like the contract (priority, created_at, dispatch_id)', () => {
    const sorted = [
      orderKey(10, 20, 'b'),
      orderKey(200, 10, 'a'),
      orderKey(10, 20, 'a'),
      orderKey(10, 3, 'z'),
    ].sort();
    expect(sorted).toEqual([
      orderKey(10, 3, 'z'),
      orderKey(10, 20, 'a'),
      orderKey(10, 20, 'b'),
      orderKey(200, 10, 'a'),
    ]);
    expect(orderKey(255, Number.MAX_SAFE_INTEGER, 'x')).toBe('255|9007199254740991|x');
    expect(terminalKey(5, 'd')).toBe('0000000000000005|d');
  });
});

describe('what the scripts write', () => {
  let fx: RedisFixture;
  beforeAll(async () => {
    fx = await openFixture('redis-keys');
  });
  afterAll(async () => {
    await fx.cleanup();
  });

  it('a lifecycle leaves exactly the keys keys.ts predicts', async () => {
    const k = fx.store.keys;
    await fx.store.enqueue(dispatch('d1', 't1', 1000, { dedupe_key: 'k1' }));
    await fx.store.enqueue(dispatch('d2', 't1', 1001));
    await fx.store.enqueue(dispatch('d3', 't2', 1000));
    await fx.store.enqueue(dispatch('d4', 't3', 1000, { available_at: 9_000_000 }));
    expect(await fx.raw.zrange(k.waiting('t3'), '0', '-1', 'WITHSCORES')).toEqual([
      orderKey(128, 1000, 'd4'),
      '9000000',
    ]);
    await fx.store.cancel('d4', 1000);
    expect(await fx.store.purgeTerminal(2000)).toBe(1);
    expect(await namespaceKeys(fx.raw, k.pattern)).toEqual(
      [
        k.record('d1'),
        k.record('d2'),
        k.record('d3'),
        k.thread('t1'),
        k.thread('t2'),
        // available at their own updated_at → straight into the ready sets
        k.ready('t1'),
        k.ready('t2'),
        k.byStatus('Queued', 't1'),
        k.byStatus('Queued', 't2'),
        k.dedupe('t1'),
        k.counts,
        k.queuedThreads,
        k.due,
      ].sort(),
    );
    const [c1] = await fx.store.claim('t1', 'c', 1000, 5000, 1);
    await fx.store.ack('d1', c1?.claim_token as string, 5100);
    await fx.store.claim('t1', 'c', 100, 5200, 1); // d2, lease 5300
    await fx.store.interrupt('t-empty', 5300);
    expect(await namespaceKeys(fx.raw, k.pattern)).toEqual(
      [
        k.record('d1'),
        k.record('d2'),
        k.record('d3'),
        k.thread('t1'),
        k.thread('t2'),
        k.thread('t-empty'),
        k.ready('t2'),
        k.byStatus('Acked', 't1'),
        k.byStatus('Claimed', 't1'),
        k.byStatus('Queued', 't2'),
        k.counts,
        k.queuedThreads,
        k.due,
        k.leases,
        k.terminal,
        k.drainedThreads,
      ].sort(),
    );
    // Reclaim d2 (Queued again, available now → ready set), cancel d3, purge everything terminal.
    expect((await fx.store.reclaimExpiredLeases(6000, 10)).map((d) => d.dispatch_id)).toEqual(['d2']);
    await fx.store.cancel('d3', 6100);
    expect(await fx.store.purgeTerminal(10_000)).toBe(2);
    expect(await fx.store.currentDispatchEpoch('t-empty')).toBe(0);
    expect(await namespaceKeys(fx.raw, k.pattern)).toEqual(
      [
        k.record('d2'),
        k.thread('t1'),
        k.ready('t1'),
        k.byStatus('Queued', 't1'),
        k.counts,
        k.queuedThreads,
        k.due,
      ].sort(),
    );
    // Drain the last one: nothing but the counters hash is left.
    const [c2] = await fx.store.claim('t1', 'c', 100, 6200, 1);
    await fx.store.ack('d2', c2?.claim_token as string, 6300);
    expect(await fx.store.purgeTerminal(10_000)).toBe(1);
    expect(await namespaceKeys(fx.raw, k.pattern)).toEqual([k.counts]);
    expect(await fx.raw.hgetall(k.counts)).toEqual({
      Queued: '0',
      Claimed: '0',
      Acked: '0',
      Cancelled: '0',
    });
  });

  it('records are plain hashes: one field per non-null attribute, termination as JSON', async () => {
    await fx.store.enqueue(dispatch('h1', 't-hash', 1000, { priority: 7, last_error: 'prev' }));
    const [c] = await fx.store.claim('t-hash', 'c', 1000, 2000, 1);
    const token = c?.claim_token as string;
    await fx.store.recordRunResult(
      'h1',
      token,
      {
        run_id: 'run-h1',
        dispatch_instance_id: 'i1',
        status: 'done',
        termination: { type: 'error', value: 'boom' },
      },
      2100,
    );
    expect(await fx.raw.hgetall(fx.store.keys.record('h1'))).toEqual({
      dispatch_id: 'h1',
      thread_id: 't-hash',
      run_id: 'run-h1',
      priority: '7',
      dispatch_epoch: '0',
      status: 'Claimed',
      available_at: '1000',
      attempt_count: '0',
      max_attempts: '5',
      last_error: 'prev',
      claim_token: token,
      claimed_by: 'c',
      lease_until: '3000',
      dispatch_instance_id: 'i1',
      run_status: 'done',
      termination: '{"type":"error","value":"boom"}',
      completed_at: '2100',
      created_at: '1000',
      updated_at: '2100',
    });
  });

  it('awkward ids (":", braces, spaces, Unicode, key-like strings) never collide', async () => {
    const threads = [
      'a',
      'a:b',
      'b',
      'Queued:a',
      'ts:Queued:a',
      '{x}',
      'x}{y',
      'tab\there',
      '线程 🚀',
      'd:a',
    ];
    for (const [i, t] of threads.entries()) {
      await fx.store.enqueue(dispatch(`aw-${t}`, t, 1000 + i));
      await fx.store.enqueue(dispatch(t, `thr-${t}`, 1000 + i)); // the same strings as dispatch ids
    }
    for (const t of threads) {
      const claimed = await fx.store.claim(t, 'c', 1000, 5000, 10);
      expect(
        claimed.map((d) => d.dispatch_id),
        t,
      ).toEqual([`aw-${t}`]);
      expect((await fx.store.loadDispatch(t))?.thread_id).toBe(`thr-${t}`);
      expect((await fx.store.listDispatches(`thr-${t}`, null, 10, 0)).map((d) => d.dispatch_id)).toEqual([t]);
    }
  });
});

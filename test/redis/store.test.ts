/**
 * Store lifecycle and composition: option validation, defaults, ownership of connections, close,
 * destroyNamespace, namespace isolation, NOSCRIPT recovery, one round trip per method, purge batching.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { createMailboxStore, PURGE_BATCH } from '../../src/redis/index.js';
import { redisKeys } from '../../src/redis/keys.js';
import { ScriptRunner } from '../../src/redis/scripts.js';
import type { CreateMailboxStoreOptions, RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl, spawnRedis, testNamespace, type SpawnedServer } from '../support/servers.js';
import { dispatch, namespaceKeys, openFixture } from './helpers.js';

const spawned: SpawnedServer[] = [];
afterAll(async () => {
  for (const s of spawned) await s.stop();
});

async function expectKind(call: () => unknown, kind: string, mention?: string): Promise<StorageError> {
  let err: unknown = null;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a StorageError').toBeInstanceOf(StorageError);
  const se = err as StorageError;
  expect(se.kind, se.message).toBe(kind);
  if (mention) expect(se.message).toContain(mention);
  return se;
}

describe('createMailboxStore options', () => {
  it('bad options → Validation naming the option, before any connection', async () => {
    const url = await redisUrl();
    const cases: [unknown, string][] = [
      [null, 'options'],
      ['redis://x', 'options'],
      [{}, 'redis'],
      [{ redis: 5 }, 'redis'],
      [{ redis: '' }, 'redis'],
      [{ redis: url, namespace: 'a b' }, 'namespace'],
      [{ redis: url, namespace: 'x'.repeat(65) }, 'namespace'],
      [{ redis: url, signals: 'kafka' }, 'signals'],
      [{ redis: url, signals: 'jetstream' }, 'nats'],
      [{ redis: url, nats: 42 }, 'nats'],
      [{ redis: url, commandTimeoutMs: 0 }, 'commandTimeoutMs'],
      [{ redis: url, commandTimeoutMs: 1.5 }, 'commandTimeoutMs'],
      [{ redis: url, sweepIntervalMs: -1 }, 'sweepIntervalMs'],
      [{ redis: url, republishAfterMs: 'soon' }, 'republishAfterMs'],
      [{ redis: url, liveCodec: 'xml' }, 'liveCodec'],
      [{ redis: url, redisOptions: 'tls' }, 'redisOptions'],
      [{ redis: url, unknownOption: true }, 'unknownOption'],
      [{ redis: url, redisOptions: { keyPrefix: 'x:' } }, 'keyPrefix'],
    ];
    for (const [options, field] of cases) {
      await expectKind(() => createMailboxStore(options as CreateMailboxStoreOptions), 'Validation', field);
    }
  });

  it('defaults: redis-streams signals without NATS; signals none; no live without NATS', async () => {
    const a = await openFixture('redis-defaults', { signals: undefined, sweepIntervalMs: 60_000 });
    expect(a.store.signalsMode).toBe('redis-streams');
    expect(a.store.supportsDispatchSignals()).toBe(true);
    await a.cleanup();

    const b = await openFixture('redis-none');
    expect(b.store.supportsDispatchSignals()).toBe(false);
    expect(await b.store.pullDispatchSignals(10, 100)).toEqual([]);
    expect(await b.store.deliverLive('t', 'Cancel')).toBe('NoSubscriber');
    expect(await b.store.deliverLiveTo({ thread_id: 't', run_id: 'r' }, 'Cancel')).toBe('NoSubscriber');
    const stream = await b.store.openLiveChannel('t');
    const entries = [];
    for await (const e of stream) entries.push(e);
    expect(entries).toEqual([]);
    await stream.close();
    await expectKind(() => b.store.deliverLive(' ', 'Cancel'), 'Validation', 'thread_id');
    await expectKind(() => b.store.pullDispatchSignals(-1, 100), 'Validation', 'max');
    await b.cleanup();
  });
});

describe('lifecycle', () => {
  it('a given ioredis instance is used, not closed; close is idempotent; calls after close → Io', async () => {
    const url = await redisUrl();
    const client = new Redis(url);
    const ns = testNamespace('redis-owned');
    const store = await createMailboxStore({ redis: client, namespace: ns, signals: 'none' });
    await store.enqueue(dispatch('d1', 't1'));
    expect(await client.hget(store.keys.record('d1'), 'status')).toBe('Queued');
    await store.destroyNamespace();
    await store.close();
    await store.close();
    expect(await client.ping()).toBe('PONG');
    await expectKind(() => store.loadDispatch('d1'), 'Io', 'closed');
    await expectKind(() => store.enqueue(dispatch('d2', 't1')), 'Io', 'closed');
    client.disconnect();
  });

  it('destroyNamespace refuses without a namespace and deletes nothing', async () => {
    const store = await createMailboxStore({ redis: await redisUrl(), signals: 'none' });
    expect(store.keys.prefix).toBe('awaken:{@default}:');
    await expectKind(() => store.destroyNamespace(), 'Validation', 'namespace');
    await store.close();
  });

  it('namespaces are isolated; destroying one leaves the other intact', async () => {
    const a = await openFixture('redis-iso-a');
    const b = await openFixture('redis-iso-b');
    await a.store.enqueue(dispatch('same-id', 'same-thread', 1000, { dedupe_key: 'k' }));
    await b.store.enqueue(dispatch('same-id', 'same-thread', 2000, { dedupe_key: 'k' }));
    await a.store.interrupt('same-thread', 3000);
    expect((await a.store.loadDispatch('same-id'))?.status).toBe('Superseded');
    expect((await b.store.loadDispatch('same-id'))?.status).toBe('Queued');
    expect(await b.store.currentDispatchEpoch('same-thread')).toBe(0);
    expect(await a.store.countDispatchesByStatus('Queued')).toBe(0);
    expect(await b.store.countDispatchesByStatus('Queued')).toBe(1);
    expect(await a.store.queuedThreadIds()).toEqual([]);
    expect(await b.store.queuedThreadIds()).toEqual(['same-thread']);
    await a.cleanup();
    expect(await namespaceKeys(b.raw, a.store.keys.pattern)).toEqual([]);
    expect((await b.store.loadDispatch('same-id'))?.created_at).toBe(2000);
    const pattern = b.store.keys.pattern;
    await b.cleanup();
    const check = new Redis(await redisUrl());
    expect(await namespaceKeys(check, pattern)).toEqual([]);
    check.disconnect();
  });
});

describe('scripts and round trips (own redis-server)', () => {
  it('is unaffected by SCRIPT FLUSH (its Lua code is a Functions library)', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const store = await createMailboxStore({ redis: server.url, namespace: 'flush', signals: 'none' });
    const raw = new Redis(server.url);
    await store.enqueue(dispatch('d1', 't1'));
    await raw.script('FLUSH');
    const claimed = await store.claim('t1', 'c', 1000, 2000, 1);
    expect(claimed.map((d) => d.dispatch_id)).toEqual(['d1']);
    await raw.script('FLUSH');
    await store.ack('d1', claimed[0]?.claim_token as string, 2100);
    expect((await store.loadDispatch('d1'))?.status).toBe('Acked');
    await store.close();
    raw.disconnect();
  });

  it('recovers from FUNCTION FLUSH (function not found → FUNCTION LOAD) transparently', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const store = await createMailboxStore({ redis: server.url, namespace: 'fflush', signals: 'none' });
    const raw = new Redis(server.url);
    await store.enqueue(dispatch('d1', 't1'));
    await raw.function('FLUSH');
    const claimed = await store.claim('t1', 'c', 1000, 2000, 1);
    expect(claimed.map((d) => d.dispatch_id)).toEqual(['d1']);
    await raw.function('FLUSH');
    await store.ack('d1', claimed[0]?.claim_token as string, 2100);
    expect((await store.loadDispatch('d1'))?.status).toBe('Acked');
    const libraries = (await raw.function('LIST')) as unknown[];
    expect(libraries).toHaveLength(1);
    await store.close();
    raw.disconnect();
  });

  it('runs the same Lua code as EVAL scripts on servers without Functions', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const raw = new Redis(server.url);
    const runner = new ScriptRunner(raw, 'eval');
    await runner.preload();
    expect(runner.mode).toBe('eval');
    const keys = redisKeys('evalmode');
    const reply = await runner.eval('list_terminal_dispatches', [keys.prefix], ['0', '0', '0', '10', '0']);
    expect(reply).toEqual(['ok']);
    await raw.script('FLUSH');
    expect(await runner.eval('list_terminal_dispatches', [keys.prefix], ['0', '0', '0', '10', '0'])).toEqual([
      'ok',
    ]);
    raw.disconnect();
  });

  it('every store method is one round trip (MONITOR counts the commands each call sends)', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const store = await createMailboxStore({ redis: server.url, namespace: 'rt', signals: 'none' });
    const monitorClient = new Redis(server.url);
    const monitor = await monitorClient.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') seen.push(String(args[0]).toLowerCase());
    });
    const settle = async (): Promise<string[]> => {
      await new Promise((r) => setTimeout(r, 50));
      return seen.splice(0);
    };
    await settle();
    await store.enqueue(dispatch('d1', 't1'));
    await store.enqueue(dispatch('d2', 't1', 1001));
    await settle();
    const calls: [string, () => Promise<unknown>, string][] = [
      ['claim', () => store.claim('t1', 'c', 100, 2000, 1), 'fcall'],
      ['loadDispatch', () => store.loadDispatch('d1'), 'hgetall'],
      ['listDispatches', () => store.listDispatches('t1', null, 10, 0), 'fcall'],
      ['countDispatchesByStatus', () => store.countDispatchesByStatus('Claimed'), 'hget'],
      ['currentDispatchEpoch', () => store.currentDispatchEpoch('t1'), 'hget'],
      ['readRunControl', () => store.readRunControl('t1'), 'hmget'],
      ['requestRunCancel', () => store.requestRunCancel('d1', 'tok'), 'fcall'],
      ['queuedThreadIds', () => store.queuedThreadIds(), 'zrange'],
      ['extendLease', () => store.extendLease('d1', 'tok', 10, 2000), 'fcall'],
      ['reclaimExpiredLeases', () => store.reclaimExpiredLeases(5000, 10), 'fcall'],
      ['claimDispatch', () => store.claimDispatch('d2', 'c', 100, 5000), 'fcall'],
      ['interruptDetailed', () => store.interruptDetailed('t1', 6000), 'fcall'],
      ['listTerminalDispatches', () => store.listTerminalDispatches(10, 0), 'fcall'],
      ['purgeTerminal', () => store.purgeTerminal(10_000), 'fcall'],
      ['cancel', () => store.cancel('nope', 1), 'fcall'],
    ];
    for (const [name, call, command] of calls) {
      await call().catch(() => undefined);
      expect(await settle(), name).toEqual([command]);
    }
    await monitorClient.disconnect();
    await store.close();
  });

  it('purgeTerminal deletes more than one batch, in bounded scripts', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const store = await createMailboxStore({ redis: server.url, namespace: 'purge', signals: 'none' });
    const n = PURGE_BATCH * 2 + 500;
    const ids = Array.from({ length: n }, (_, i) => `p${i}`);
    await Promise.all(ids.map((id, i) => store.enqueue(dispatch(id, `t${i % 50}`, 1000))));
    await Promise.all(ids.map((id) => store.cancel(id, 2000)));
    await store.interrupt('t-lonely', 2000);
    expect(await store.countDispatchesByStatus('Cancelled')).toBe(n);
    expect(await store.purgeTerminal(3000)).toBe(n);
    expect(await store.countDispatchesByStatus('Cancelled')).toBe(0);
    expect(await store.currentDispatchEpoch('t-lonely')).toBe(0);
    const raw = new Redis(server.url);
    expect(await namespaceKeys(raw, store.keys.pattern)).toEqual([store.keys.counts]);
    raw.disconnect();
    await store.close();
  });
});

describe('argument hygiene specific to Redis', () => {
  it('lone surrogates in ids are rejected (UTF-8 would merge distinct ids into one key)', async () => {
    const fx = await openFixture('redis-utf16');
    await expectKind(() => fx.store.enqueue(dispatch('d\uD800', 't1')), 'Validation', 'dispatch_id');
    await expectKind(() => fx.store.loadDispatch('\uDC00x'), 'Validation', 'dispatch_id');
    await expectKind(() => fx.store.claim('t\uD83D', 'c', 1, 1, 1), 'Validation', 'thread_id');
    await fx.store.enqueue(dispatch('d-🚀', 't-🚀'));
    expect((await fx.store.loadDispatch('d-🚀'))?.thread_id).toBe('t-🚀');
    await fx.cleanup();
  });
});

export type { RedisMailboxStore };

/**
 * Connection faults against our own redis-server processes (stopped / paused by PID): every call fails
 * with `Io` within `commandTimeoutMs` while Redis is gone or stalled, the store recovers by itself when it
 * comes back, and secrets never show up in error messages.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnRedis, testNamespace, type SpawnedServer } from '../support/servers.js';
import { dispatch, sleep } from './helpers.js';

const TIMEOUT_MS = 400;
/** Generous slack over the bound for a loaded 2-core machine; the point is "bounded", not "fast". */
const SLACK_MS = 2500;

const spawned: SpawnedServer[] = [];
const stores: RedisMailboxStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  for (const s of spawned) await s.stop();
});

async function timedFailure(call: () => Promise<unknown>): Promise<{ err: StorageError; ms: number }> {
  const start = Date.now();
  let err: unknown = null;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  const ms = Date.now() - start;
  expect(err, 'the call should have failed').toBeInstanceOf(StorageError);
  return { err: err as StorageError, ms };
}

/** Every kind of call (script, plain command, pipeline) fails with Io within the bound. */
async function expectAllIo(store: RedisMailboxStore, secret?: string): Promise<void> {
  const calls: [string, () => Promise<unknown>][] = [
    ['enqueue', () => store.enqueue(dispatch(`d-${Math.random()}`, 't-fault', 1000))],
    ['claim', () => store.claim('t-fault', 'c', 1000, 2000, 1)],
    ['loadDispatch', () => store.loadDispatch('d0')],
    ['countDispatchesByStatus', () => store.countDispatchesByStatus('Queued')],
    ['loadDispatches', () => store.loadDispatches(['d0', 'd1'])],
    ['queuedThreadIds', () => store.queuedThreadIds()],
  ];
  for (const [name, call] of calls) {
    const { err, ms } = await timedFailure(call);
    expect(err.kind, `${name}: ${err.message}`).toBe('Io');
    expect(ms, `${name} took ${ms} ms`).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    if (secret) expect(err.message).not.toContain(secret);
  }
}

async function eventually<T>(call: () => Promise<T>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      return await call();
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw new Error(`still failing after ${ms} ms: ${String(last)}`);
}

describe('Redis connection faults', () => {
  it('server stopped → Io within the bound; restarted → works again (AOF keeps the data)', async () => {
    const server = await spawnRedis({ appendOnly: true });
    spawned.push(server);
    const store = await createMailboxStore({
      redis: server.url,
      namespace: testNamespace('fault-stop'),
      signals: 'none',
      commandTimeoutMs: TIMEOUT_MS,
    });
    stores.push(store);
    await store.enqueue(dispatch('d0', 't-fault', 1000));

    server.signal('SIGKILL');
    await sleep(100);
    await expectAllIo(store);

    await server.restart();
    // The server restarted without its functions (no persistence): the first FCALL answers "Function not
    // found", the library is loaded again and the call re-sent.
    const d = await eventually(() => store.loadDispatch('d0'));
    expect(d?.status).toBe('Queued');
    const claimed = await eventually(() => store.claim('t-fault', 'c', 1000, 2000, 1));
    expect(claimed.map((x) => x.dispatch_id)).toEqual(['d0']);
    await store.ack('d0', claimed[0]?.claim_token as string, 2100);
    expect((await store.loadDispatch('d0'))?.status).toBe('Acked');
  });

  it('server paused (SIGSTOP) → Io within the bound; SIGCONT → works again', async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const store = await createMailboxStore({
      redis: server.url,
      namespace: testNamespace('fault-stall'),
      signals: 'none',
      commandTimeoutMs: TIMEOUT_MS,
    });
    stores.push(store);
    await store.enqueue(dispatch('d0', 't-fault', 1000));

    server.signal('SIGSTOP');
    try {
      const { err, ms } = await timedFailure(() => store.claim('t-fault', 'c', 1000, 2000, 1));
      expect(err.kind).toBe('Io');
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      await expectAllIo(store);
    } finally {
      server.signal('SIGCONT');
    }
    // The claim that timed out may still have run once the server resumed (its outcome was unknown):
    // either way the dispatch is claimed at most once and the store answers again.
    const d = await eventually(() => store.loadDispatch('d0'));
    expect(['Queued', 'Claimed']).toContain(d?.status);
    await store.enqueue(dispatch('d1', 't-other', 1000));
    expect((await store.claim('t-other', 'c', 1000, 2000, 1)).map((x) => x.dispatch_id)).toEqual(['d1']);
  });

  it("a caller-owned ioredis client (offline queue on) is bounded too, and stays the caller's", async () => {
    const server = await spawnRedis();
    spawned.push(server);
    const client = new Redis(server.url); // ioredis defaults: offline queue, 20 retries per request
    client.on('error', () => undefined);
    const store = await createMailboxStore({
      redis: client,
      namespace: testNamespace('fault-given'),
      signals: 'none',
      commandTimeoutMs: TIMEOUT_MS,
    });
    stores.push(store);
    await store.enqueue(dispatch('d0', 't-fault', 1000));
    server.signal('SIGKILL');
    await sleep(100);
    await expectAllIo(store);
    await server.restart();
    // No AOF here, so the restarted server is empty: the store answers again (d0 is gone with the data).
    expect(await eventually(() => store.loadDispatch('d0'))).toBeNull();
    await store.enqueue(dispatch('d1', 't-again', 1000));
    expect((await store.loadDispatch('d1'))?.status).toBe('Queued');
    await store.close();
    expect(await eventually(() => client.ping())).toBe('PONG');
    client.disconnect();
  });

  it('createMailboxStore against a dead server → Io within the bound', async () => {
    const server = await spawnRedis();
    const url = server.url;
    await server.stop();
    const { err, ms } = await timedFailure(() =>
      createMailboxStore({ redis: url, signals: 'none', commandTimeoutMs: TIMEOUT_MS }),
    );
    expect(err.kind).toBe('Io');
    expect(ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  });

  it('passwords never appear in error messages (URL userinfo or redisOptions.password)', async () => {
    const secret = 'pa55-Very-Secret-42';
    const server = await spawnRedis({ requirePass: secret });
    spawned.push(server);
    const withUrl = `redis://:${secret}@127.0.0.1:${server.port}`;

    // Wrong password: Io, and neither password is echoed.
    const wrong = 'not-the-pa55word-99';
    const bad = await timedFailure(() =>
      createMailboxStore({
        redis: `redis://:${wrong}@127.0.0.1:${server.port}`,
        signals: 'none',
        commandTimeoutMs: TIMEOUT_MS,
      }),
    );
    expect(bad.err.kind).toBe('Io');
    expect(bad.err.message).not.toContain(wrong);
    expect(bad.err.message).not.toContain(secret);

    const a = await createMailboxStore({
      redis: withUrl,
      namespace: testNamespace('fault-pass'),
      signals: 'none',
      commandTimeoutMs: TIMEOUT_MS,
    });
    const b = await createMailboxStore({
      redis: server.url,
      redisOptions: { password: secret },
      namespace: testNamespace('fault-pass'),
      signals: 'none',
      commandTimeoutMs: TIMEOUT_MS,
    });
    stores.push(a, b);
    await a.enqueue(dispatch('d0', 't', 1000));
    await b.enqueue(dispatch('d0', 't', 1000));
    server.signal('SIGKILL');
    await sleep(100);
    await expectAllIo(a, secret);
    await expectAllIo(b, secret);
  });
});

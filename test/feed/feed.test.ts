/**
 * The lifecycle feed across "processes": a node (its own store connection, a Mailbox and a publisher) and an
 * observer (another store connection to the same namespace) on every transport: in-process (memory store),
 * the capped Redis Stream (Redis without NATS) and core NATS.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { attachLifecycleFeed, openLifecycleFeed } from '../../src/feed/index.js';
import type { FeedTransport, LifecycleEvent, LifecycleFeed } from '../../src/feed/index.js';
import { Mailbox } from '../../src/mailbox/index.js';
import type { ExecutorOutcome } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { eventually } from '../mailbox/wait.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';

interface Setup {
  /** The store of the working node. */
  node: MailboxStore;
  /** Another connection to the same namespace (the observing process); the node's store for memory. */
  observer: MailboxStore;
  transport: string;
  cleanup(): Promise<void>;
}

type Kind = 'memory' | 'redis-stream' | 'nats';

async function setup(kind: Kind): Promise<Setup> {
  if (kind === 'memory') {
    const store = new MemoryMailboxStore({ sweepIntervalMs: 200 });
    return { node: store, observer: store, transport: 'memory', cleanup: () => store.close() };
  }
  const namespace = testNamespace(`feed-${kind}`);
  const open = async (): Promise<RedisMailboxStore> =>
    createMailboxStore({
      redis: await redisUrl(),
      namespace,
      ...(kind === 'nats' ? { nats: await natsUrl() } : { signals: 'redis-streams' as const }),
    });
  const node = await open();
  const observer = await open();
  return {
    node,
    observer,
    transport: kind,
    cleanup: async () => {
      await observer.close();
      await node.destroyNamespace();
      await node.close();
    },
  };
}

/** Executor: run ids say what to do (`fail-*` permanent failure, `retry-*` one transient failure). */
const executor = async (ctx: { dispatch: RunDispatch; attempt: number }): Promise<ExecutorOutcome> => {
  const run = ctx.dispatch.run_id;
  if (run.startsWith('fail')) return { kind: 'fail', error: `permanent: ${run}` };
  if (run.startsWith('retry') && ctx.attempt === 1) return { kind: 'retry', error: 'try again' };
  return { kind: 'completed' };
};

function collect(feed: LifecycleFeed): LifecycleEvent[] {
  const seen: LifecycleEvent[] = [];
  feed.on('event', (e) => seen.push(e));
  return seen;
}

const types = (seen: LifecycleEvent[], dispatchId: string): string[] =>
  seen.filter((e) => e.dispatch_id === dispatchId).map((e) => e.type);

describe.each<Kind>(['memory', 'redis-stream', 'nats'])('lifecycle feed: %s', (kind) => {
  let s: Setup;
  const closers: (() => Promise<unknown>)[] = [];

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await s.cleanup();
  });

  async function node(): Promise<Mailbox> {
    const mailbox = new Mailbox({
      store: s.node,
      executor,
      config: { defaultRetryDelayMs: 10, signalFetchExpiresMs: 100, sweepIntervalMs: 3_600_000 },
    });
    const publisher = attachLifecycleFeed({ store: s.node, mailbox, flushMs: 5 });
    expect(publisher.transport).toBe(s.transport);
    await mailbox.start();
    closers.push(
      () => mailbox.stop(),
      () => publisher.close(),
    );
    return mailbox;
  }

  async function observe(): Promise<LifecycleFeed> {
    const feed = await openLifecycleFeed(s.observer);
    closers.push(() => feed.close());
    return feed;
  }

  it("another process sees every node's transitions, and waitUntilFinished answers", async () => {
    s = await setup(kind);
    const feed = await observe();
    const seen = collect(feed);
    const mailbox = await node();

    const ok = await mailbox.submitBackground({ threadId: 't1', runId: 'ok-1' });
    const retry = await mailbox.submitBackground({ threadId: 't2', runId: 'retry-1' });
    const fail = await mailbox.submitBackground({ threadId: 't3', runId: 'fail-1' });

    const [done, retried, dead] = await Promise.all([
      feed.waitUntilFinished(ok.dispatchId, { timeoutMs: 10_000 }),
      feed.waitUntilFinished(retry.dispatchId, { timeoutMs: 10_000 }),
      feed.waitUntilFinished(fail.dispatchId, { timeoutMs: 10_000 }),
    ]);
    expect(done.status).toBe('Acked');
    expect(retried).toMatchObject({ status: 'Acked', attempt_count: 1 });
    expect(dead).toMatchObject({ status: 'DeadLetter', last_error: 'permanent: fail-1' });

    await eventually('the last events', () =>
      types(seen, fail.dispatchId).includes('deadLettered') &&
      types(seen, retry.dispatchId).filter((t) => t === 'completed').length === 1
        ? true
        : undefined,
    );
    expect(types(seen, ok.dispatchId)).toEqual(['enqueued', 'claimed', 'started', 'completed']);
    expect(types(seen, retry.dispatchId)).toEqual([
      'enqueued',
      'claimed',
      'started',
      'retried',
      'claimed',
      'started',
      'completed',
    ]);
    const retriedEvent = seen.find((e) => e.dispatch_id === retry.dispatchId && e.type === 'retried');
    expect(retriedEvent).toMatchObject({ error: 'try again', status: 'Queued', node: mailbox.consumerId });
    expect(retriedEvent?.retry_at).toBeGreaterThan(0);
    const deadEvent = seen.find((e) => e.type === 'deadLettered');
    expect(deadEvent).toMatchObject({
      dispatch_id: fail.dispatchId,
      thread_id: 't3',
      run_id: 'fail-1',
      status: 'DeadLetter',
      error: 'permanent: fail-1',
    });
    expect(feed.malformed).toBe(0);
  });

  it('waitUntilFinished is exact without any feed message: the record decides', async () => {
    s = await setup(kind);
    // A transport that never delivers anything.
    const deaf: FeedTransport = {
      kind: 'deaf',
      publish: async () => undefined,
      subscribe: async () => ({ close: async () => undefined }),
    };
    const feed = await openLifecycleFeed(s.observer, { transport: deaf });
    closers.push(() => feed.close());
    const mailbox = await node();
    const { dispatchId } = await mailbox.submitBackground({ threadId: 't1', runId: 'ok-2' });
    const finished = await feed.waitUntilFinished(dispatchId, { timeoutMs: 10_000, pollMs: 20 });
    expect(finished.status).toBe('Acked');
    // Already finished: answers at once.
    expect((await feed.waitUntilFinished(dispatchId, { timeoutMs: 1_000 })).status).toBe('Acked');
    await expect(feed.waitUntilFinished('no-such-dispatch', { timeoutMs: 1_000 })).rejects.toMatchObject({
      kind: 'NotFound',
      detail: 'no-such-dispatch',
    });
  });

  it('times out with the last status, rejects bad arguments, and rejects pending waits on close', async () => {
    s = await setup(kind);
    const feed = await openLifecycleFeed(s.observer);
    const at = Date.now();
    await s.node.enqueue({
      dispatch_id: 'q1',
      thread_id: 't1',
      run_id: 'r1',
      created_at: at,
      updated_at: at,
      available_at: at,
    } as RunDispatch);
    const err = await feed.waitUntilFinished('q1', { timeoutMs: 100, pollMs: 20 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'Io' });
    expect((err as Error).message).toContain('last status: Queued');
    await expect(feed.waitUntilFinished('q1', { timeoutMs: -1 })).rejects.toMatchObject({
      kind: 'Validation',
    });
    await expect(feed.waitUntilFinished('', { timeoutMs: 10 })).rejects.toMatchObject({ kind: 'Validation' });
    const pending = expect(feed.waitUntilFinished('q1', { timeoutMs: 60_000 })).rejects.toMatchObject({
      kind: 'Io',
      detail: 'lifecycle feed is closed',
    });
    await feed.close();
    await pending;
  });

  it('async iteration, with a bounded buffer that counts what it dropped', async () => {
    s = await setup(kind);
    const feed = await openLifecycleFeed(s.observer, { bufferSize: 3 });
    closers.push(() => feed.close());
    const iterator = feed[Symbol.asyncIterator]();
    const publisher = attachLifecycleFeed({ store: s.node, flushMs: 1, node: 'producer-1' });
    closers.push(() => publisher.close());
    const at = Date.now();
    for (let i = 0; i < 5; i++) {
      await s.node.enqueue({
        dispatch_id: `e${i}`,
        thread_id: 't1',
        run_id: `r${i}`,
        created_at: at,
        updated_at: at,
        available_at: at,
      } as RunDispatch);
    }
    await publisher.flush();
    await eventually('the buffer overflowed', () => feed.dropped === 2 || undefined);
    const got: LifecycleEvent[] = [];
    for (let i = 0; i < 3; i++) {
      const next = await iterator.next();
      if (!next.done) got.push(next.value);
    }
    expect(got.map((e) => e.dispatch_id)).toEqual(['e2', 'e3', 'e4']);
    expect(got[0]).toMatchObject({
      type: 'enqueued',
      status: 'Queued',
      node: 'producer-1',
      attempt_count: 0,
    });
    await feed.close();
    expect((await iterator.next()).done).toBe(true);
  });
});

describe('lifecycle feed transports', () => {
  it('Redis Stream: capped, replays from the oldest retained entry, counts malformed entries', async () => {
    const namespace = testNamespace('feed-cap');
    const store = await createMailboxStore({ redis: await redisUrl(), namespace, signals: 'none' });
    const raw = new Redis(await redisUrl());
    try {
      const publisher = attachLifecycleFeed({ store, maxBatch: 1, flushMs: 0, streamMaxLen: 10 });
      const at = Date.now();
      for (let i = 0; i < 300; i++) {
        await store.enqueue({
          dispatch_id: `d${i}`,
          thread_id: 't1',
          run_id: `r${i}`,
          created_at: at,
          updated_at: at,
          available_at: at,
        } as RunDispatch);
      }
      await publisher.flush();
      // MAXLEN ~ trims whole macro nodes (100 entries by default): bounded, not exact.
      expect(await raw.xlen(store.keys.lifecycleFeed)).toBeLessThanOrEqual(10 + 100);
      await raw.xadd(store.keys.lifecycleFeed, '*', 'e', '{"not":"a batch"}');
      const feed = await openLifecycleFeed(store, { from: 'oldest' });
      const seen = collect(feed);
      await eventually('the replay', () => (seen.some((e) => e.dispatch_id === 'd299') ? true : undefined));
      expect(seen.length).toBeLessThanOrEqual(110);
      await eventually('the malformed entry', () => feed.malformed === 1 || undefined);
      await feed.close();
      await publisher.close();
    } finally {
      raw.disconnect();
      await store.destroyNamespace();
      await store.close();
    }
  });

  it('NATS and memory keep no history; a store without a transport needs one', async () => {
    const memory = new MemoryMailboxStore();
    await expect(openLifecycleFeed(memory, { from: 'oldest' })).rejects.toMatchObject({ kind: 'Validation' });
    const nats = await createMailboxStore({
      redis: await redisUrl(),
      nats: await natsUrl(),
      namespace: testNamespace('feed-nats'),
      signals: 'none',
    });
    try {
      await expect(openLifecycleFeed(nats, { from: 'oldest' })).rejects.toMatchObject({ kind: 'Validation' });
      const custom = { loadDispatch: memory.loadDispatch.bind(memory), enqueue: memory.enqueue.bind(memory) };
      await expect(openLifecycleFeed(custom as unknown as MailboxStore)).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(openLifecycleFeed(memory, { bufferSize: 0 })).rejects.toMatchObject({
        kind: 'Validation',
      });
    } finally {
      await nats.destroyNamespace();
      await nats.close();
      await memory.close();
    }
  });

  it('publishers sharing one store publish each enqueue once, and hand over when one closes', async () => {
    const store = new MemoryMailboxStore();
    const feed = await openLifecycleFeed(store);
    const seen = collect(feed);
    const a = attachLifecycleFeed({ store, node: 'a', flushMs: 1 });
    const b = attachLifecycleFeed({ store, node: 'b', flushMs: 1 });
    const enqueue = (id: string): Promise<void> => {
      const at = Date.now();
      return store.enqueue({
        dispatch_id: id,
        thread_id: 't1',
        run_id: `r-${id}`,
        created_at: at,
        updated_at: at,
        available_at: at,
      } as RunDispatch);
    };
    await enqueue('e1');
    await a.close();
    await enqueue('e2');
    await b.flush();
    await eventually('both enqueues', () => (seen.length >= 2 ? true : undefined));
    expect(seen.map((e) => [e.dispatch_id, e.node])).toEqual([
      ['e1', 'a'],
      ['e2', 'b'],
    ]);
    await b.close();
    await enqueue('e3'); // no publisher left: nothing published, the enqueue itself works
    expect(await store.loadDispatch('e3')).not.toBeNull();
    await feed.close();
    await store.close();
  });

  it('a publisher whose transport fails keeps at most maxBuffered events and counts the rest', async () => {
    const store = new MemoryMailboxStore();
    let fail = true;
    const sent: LifecycleEvent[] = [];
    const flaky: FeedTransport = {
      kind: 'flaky',
      publish: async (_node, events) => {
        if (fail) throw new Error('transport down');
        sent.push(...events);
      },
      subscribe: async () => ({ close: async () => undefined }),
    };
    const publisher = attachLifecycleFeed({ store, transport: flaky, maxBuffered: 5, flushMs: 1 });
    const at = Date.now();
    for (let i = 0; i < 12; i++) {
      await store.enqueue({
        dispatch_id: `d${i}`,
        thread_id: `t${i}`,
        run_id: `r${i}`,
        created_at: at,
        updated_at: at,
        available_at: at,
      } as RunDispatch);
    }
    await publisher.flush();
    expect(publisher.dropped).toBe(7);
    fail = false;
    await eventually('the retry', async () => {
      await publisher.flush();
      return sent.length > 0 || undefined;
    });
    expect(sent.map((e) => e.dispatch_id)).toEqual(['d7', 'd8', 'd9', 'd10', 'd11']);
    await publisher.close();
    await store.close();
  });
});

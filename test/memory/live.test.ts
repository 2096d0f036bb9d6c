/**
 * The memory store's live channel (contract.md §7 memory semantics, §12.1 live cases): Delivered only after
 * the receipt is acked, NoSubscriber otherwise (nobody, closed, replaced, never acked, buffer full), exact
 * keys, order, all four variants, deep copies, close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
} from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import type { MemoryMailboxStoreOptions } from '../../src/memory/index.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const say = (text: string): LiveRunCommand => ({
  Messages: [{ id: `m-${text}`, role: 'user', content: [{ type: 'text', text }] }],
});

function textOf(command: LiveRunCommand): string | null {
  if (typeof command === 'string' || !('Messages' in command)) return null;
  const block = command.Messages[0]?.content[0];
  return block?.type === 'text' ? block.text : null;
}

/** The next entry of a stream, or null when it ended. */
async function nextEntry(stream: LiveRunCommandStream): Promise<LiveRunCommandEntry | null> {
  const it = stream[Symbol.asyncIterator]();
  const r = await it.next();
  return r.done ? null : r.value;
}

/** Read a stream in the background, acking everything. */
function ackAll(stream: LiveRunCommandStream): { received: LiveRunCommand[]; done: Promise<void> } {
  const received: LiveRunCommand[] = [];
  const done = (async () => {
    for await (const entry of stream) {
      received.push(entry.command);
      await entry.receipt.ack();
    }
  })();
  return { received, done };
}

function settledFlag<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { settled: () => done, promise };
}

const stores: MemoryMailboxStore[] = [];
function makeStore(options: MemoryMailboxStoreOptions = {}): MemoryMailboxStore {
  const store = new MemoryMailboxStore({ signals: false, ...options });
  stores.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

const ALL_VARIANTS: LiveRunCommand[] = [
  {
    Messages: [
      { id: 'm1', role: 'user', content: [{ type: 'text', text: 'hi 🚀' }] },
      {
        id: 'm2',
        role: 'assistant',
        content: [{ type: 'text', text: 'calling' }],
        tool_calls: [{ id: 'call_1', name: 'search', arguments: { q: 'x', n: [1, null, true] } }],
      },
    ],
  },
  'PendingBoundaryWake',
  'Cancel',
  {
    Decision: [
      [
        'call_1',
        { decision_id: 'd1', action: 'resume', result: { approved: true }, reason: 'ok', updated_at: 5 },
      ],
      ['call_2', { decision_id: 'd2', action: 'cancel', updated_at: 0 }],
    ],
  },
];

describe('memory live channel', () => {
  it('delivered requires ack: the delivery stays pending until receipt.ack()', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t1');
    const delivery = settledFlag(store.deliverLive('t1', 'Cancel'));
    const entry = await nextEntry(stream);
    expect(entry?.command).toBe('Cancel');
    await sleep(100);
    expect(delivery.settled()).toBe(false);
    await entry?.receipt.ack();
    expect(await delivery.promise).toBe('Delivered');
    await entry?.receipt.ack(); // idempotent
  });

  it('no subscriber → NoSubscriber at once (thread-level and targeted)', async () => {
    const store = makeStore();
    expect(await store.deliverLive('nobody', 'Cancel')).toBe('NoSubscriber');
    expect(await store.deliverLiveTo({ thread_id: 'nobody', run_id: 'r', dispatch_id: 'd' }, 'Cancel')).toBe(
      'NoSubscriber',
    );
  });

  it('subscriber closed → its stream ends and later deliveries are NoSubscriber', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t-closed');
    const reader = ackAll(stream);
    await stream.close();
    await reader.done;
    expect(await store.deliverLive('t-closed', 'Cancel')).toBe('NoSubscriber');
    await stream.close(); // idempotent
    expect(store.stats().liveSubscribers).toBe(0);
  });

  it('closing the stream before acking resolves pending and unacked deliveries NoSubscriber', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t-drop');
    const first = store.deliverLive('t-drop', say('read'));
    const entry = await nextEntry(stream); // read, never acked
    const second = store.deliverLive('t-drop', say('buffered')); // never read
    await stream.close();
    expect(await first).toBe('NoSubscriber');
    expect(await second).toBe('NoSubscriber');
    await entry?.receipt.ack(); // too late: a no-op, not an error
  });

  it('receipt never acked → NoSubscriber after the ack timeout (default 500 ms)', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t-unacked');
    const start = Date.now();
    const delivery = store.deliverLive('t-unacked', say('ignored'));
    const entry = await nextEntry(stream);
    expect(entry).not.toBeNull();
    expect(await delivery).toBe('NoSubscriber');
    expect(Date.now() - start).toBeGreaterThanOrEqual(450);
    await entry?.receipt.ack(); // after the timeout: ignored
  });

  it('the ack timeout is configurable, and an expired unread command is never handed out', async () => {
    const store = makeStore({ liveAckTimeoutMs: 50 });
    const stream = await store.openLiveChannel('t-fast');
    expect(await store.deliverLive('t-fast', say('stale'))).toBe('NoSubscriber');
    const fresh = store.deliverLive('t-fast', say('fresh'));
    const entry = await nextEntry(stream);
    expect(entry && textOf(entry.command)).toBe('fresh');
    await entry?.receipt.ack();
    expect(await fresh).toBe('Delivered');
  });

  it('threads are isolated, and thread-level and targeted subscribers never see each other', async () => {
    const store = makeStore();
    const a = ackAll(await store.openLiveChannel('t-a'));
    const b = ackAll(await store.openLiveChannel('t-b'));
    const run = ackAll(await store.openLiveChannelFor({ thread_id: 't-a', run_id: 'r1', dispatch_id: 'd1' }));
    const runOnly = ackAll(await store.openLiveChannelFor({ thread_id: 't-a', run_id: 'r2' }));
    expect(await store.deliverLive('t-a', say('to a'))).toBe('Delivered');
    expect(await store.deliverLive('t-b', say('to b'))).toBe('Delivered');
    expect(
      await store.deliverLiveTo({ thread_id: 't-a', run_id: 'r1', dispatch_id: 'd1' }, say('to run')),
    ).toBe('Delivered');
    expect(await store.deliverLiveTo({ thread_id: 't-a', run_id: 'r2', dispatch_id: null }, say('r2'))).toBe(
      'Delivered',
    );
    // A target without the subscriber's dispatch id, or with another one, does not match.
    expect(await store.deliverLiveTo({ thread_id: 't-a', run_id: 'r1' }, say('x'))).toBe('NoSubscriber');
    expect(await store.deliverLiveTo({ thread_id: 't-a', run_id: 'r2', dispatch_id: 'd9' }, say('x'))).toBe(
      'NoSubscriber',
    );
    expect(a.received.map(textOf)).toEqual(['to a']);
    expect(b.received.map(textOf)).toEqual(['to b']);
    expect(run.received.map(textOf)).toEqual(['to run']);
    expect(runOnly.received.map(textOf)).toEqual(['r2']);
  });

  it("keys cannot collide through ':' in ids", async () => {
    const store = makeStore();
    // As plain string keys these would all be `thread:a:run:b:dispatch:c`.
    const threadLevel = ackAll(await store.openLiveChannel('a:run:b:dispatch:c'));
    const targeted = ackAll(
      await store.openLiveChannelFor({ thread_id: 'a', run_id: 'b', dispatch_id: 'c' }),
    );
    const shifted = ackAll(
      await store.openLiveChannelFor({ thread_id: 'a:run:b', run_id: 'dispatch', dispatch_id: 'c' }),
    );
    expect(await store.deliverLive('a:run:b:dispatch:c', say('thread'))).toBe('Delivered');
    expect(await store.deliverLiveTo({ thread_id: 'a', run_id: 'b', dispatch_id: 'c' }, say('target'))).toBe(
      'Delivered',
    );
    expect(threadLevel.received.map(textOf)).toEqual(['thread']);
    expect(targeted.received.map(textOf)).toEqual(['target']);
    expect(shifted.received).toEqual([]);
  });

  it('reopen replaces: the old stream ends, its pending delivery is NoSubscriber, the new one receives', async () => {
    const store = makeStore();
    const target = { thread_id: 't-re', run_id: 'r1' };
    const old = await store.openLiveChannelFor(target);
    const pending = store.deliverLiveTo(target, say('to old'));
    const replacement = await store.openLiveChannelFor(target);
    expect(await pending).toBe('NoSubscriber');
    expect(await nextEntry(old)).toBeNull(); // ended (its buffered command was dropped)
    const reader = ackAll(replacement);
    expect(await store.deliverLiveTo(target, say('to new'))).toBe('Delivered');
    expect(reader.received.map(textOf)).toEqual(['to new']);
    await old.close(); // closing the replaced stream does not unsubscribe the new one
    expect(await store.deliverLiveTo(target, say('still new'))).toBe('Delivered');
    expect(store.stats().liveSubscribers).toBe(1);
  });

  it('order is preserved for one subscriber, also for concurrent deliveries', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t-order');
    const deliveries = Array.from({ length: 30 }, (_, i) => store.deliverLive('t-order', say(`n${i}`)));
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) {
      const entry = await nextEntry(stream);
      if (!entry) throw new Error('stream ended early');
      seen.push(textOf(entry.command) ?? '?');
      await entry.receipt.ack();
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `n${i}`));
    expect(new Set(await Promise.all(deliveries))).toEqual(new Set(['Delivered']));
  });

  it('all four command variants arrive intact, as copies', async () => {
    const store = makeStore();
    const target = { thread_id: 't-variants', run_id: 'r1', dispatch_id: 'd1' };
    const stream = await store.openLiveChannelFor(target);
    const sent = structuredClone(ALL_VARIANTS);
    const deliveries = sent.map((c) => store.deliverLiveTo(target, c));
    // Mutating what was sent must not change what the consumer receives.
    const first = sent[0] as { Messages: { id?: string | null }[] };
    (first.Messages[0] as { id?: string | null }).id = 'mutated';
    const entries: LiveRunCommandEntry[] = [];
    for (let i = 0; i < ALL_VARIANTS.length; i++) {
      const entry = await nextEntry(stream);
      if (!entry) throw new Error(`command ${i} missing`);
      entries.push(entry);
    }
    expect(entries.map((e) => e.command)).toEqual(ALL_VARIANTS);
    await Promise.all(entries.map((e) => e.receipt.ack()));
    const outcomes: LiveDeliveryOutcome[] = await Promise.all(deliveries);
    expect(outcomes).toEqual(['Delivered', 'Delivered', 'Delivered', 'Delivered']);
  });

  it('a full buffer answers NoSubscriber without dropping what is buffered', async () => {
    const store = makeStore({ liveBufferSize: 2 });
    const stream = await store.openLiveChannel('t-full');
    const a = store.deliverLive('t-full', say('a'));
    const b = store.deliverLive('t-full', say('b'));
    expect(await store.deliverLive('t-full', say('c'))).toBe('NoSubscriber');
    for (const expected of ['a', 'b']) {
      const entry = await nextEntry(stream);
      expect(entry && textOf(entry.command)).toBe(expected);
      await entry?.receipt.ack();
    }
    expect([await a, await b]).toEqual(['Delivered', 'Delivered']);
  });

  it('invalid commands and targets are Validation errors', async () => {
    const store = makeStore();
    for (const bad of ['Pause', { Steer: [] }, null] as unknown[]) {
      await expect(store.deliverLive('t', bad as LiveRunCommand)).rejects.toMatchObject({
        kind: 'Validation',
      });
    }
    await expect(store.deliverLiveTo({ thread_id: 't', run_id: ' ' }, 'Cancel')).rejects.toMatchObject({
      kind: 'Validation',
    });
    await expect(store.openLiveChannel('')).rejects.toMatchObject({ kind: 'Validation' });
  });

  it('close ends every stream and pending delivery; later calls throw Io "store is closed"', async () => {
    const store = makeStore();
    const stream = await store.openLiveChannel('t-close');
    const pending = store.deliverLive('t-close', 'Cancel');
    await store.close();
    expect(await pending).toBe('NoSubscriber');
    expect(await nextEntry(stream)).toBeNull();
    const err = await store.deliverLive('t-close', 'Cancel').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('Io');
    expect((err as StorageError).message).toBe('io error: store is closed');
    await expect(store.openLiveChannel('t-close')).rejects.toMatchObject({ kind: 'Io' });
  });
});

/**
 * The memory store against the three conformance suites, plus the memory-only live rules of contract.md §7
 * (single consumer per key: re-opening replaces the previous subscriber, whose stream ends).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import type { MemoryMailboxStoreOptions } from '../../src/memory/index.js';
import type { LiveRunCommandEntry } from '../../src/contract/types.js';
import { describeLiveConformance } from './live-suite.js';
import { describeSignalConformance } from './signal-suite.js';
import { describeConformance } from './suite.js';
import type { StoreFixture } from './suite.js';

/** Memory live ack timeout (contract.md §10). */
const LIVE_ACK_TIMEOUT_MS = 500;

function memoryStore(options?: MemoryMailboxStoreOptions): () => Promise<StoreFixture> {
  return async () => {
    const store = new MemoryMailboxStore(options);
    return {
      store,
      cleanup: () => store.close(),
      plant: (record) => store.plantRecord(record),
    };
  };
}

describeConformance('memory', memoryStore());
describeConformance('memory without signals', memoryStore({ signals: false }));
describeLiveConformance('memory', memoryStore(), { ackTimeoutMs: LIVE_ACK_TIMEOUT_MS });
describeSignalConformance('memory', memoryStore({ sweepIntervalMs: 100, republishAfterMs: 200 }), {
  sweepWaitMs: 3000,
});

describe('memory store specifics', () => {
  let store: MemoryMailboxStore | null = null;
  afterEach(async () => {
    await store?.close();
    store = null;
  });

  it('defaults match upstream: live ack timeout 500 ms', async () => {
    store = new MemoryMailboxStore();
    const stream = await store.openLiveChannel('t-timeout');
    const iterator = stream[Symbol.asyncIterator]();
    const start = Date.now();
    const delivery = store.deliverLive('t-timeout', 'Cancel');
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(await delivery).toBe('NoSubscriber');
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(LIVE_ACK_TIMEOUT_MS - 5);
    expect(elapsed).toBeLessThan(LIVE_ACK_TIMEOUT_MS + 2000);
    await stream.close();
  });

  it('re-opening a live channel replaces the previous subscriber, whose stream ends', async () => {
    store = new MemoryMailboxStore();
    const target = { thread_id: 't-reopen', run_id: 'r1', dispatch_id: 'd1' };
    const old = await store.openLiveChannelFor(target);
    const oldEntries: LiveRunCommandEntry[] = [];
    const oldDone = (async () => {
      for await (const entry of old) oldEntries.push(entry);
    })();
    const replacement = await store.openLiveChannelFor(target);
    await oldDone; // the old stream ended
    const iterator = replacement[Symbol.asyncIterator]();
    const delivery = store.deliverLiveTo(target, 'Cancel');
    const next = await iterator.next();
    expect(next.done).toBe(false);
    if (!next.done) {
      expect(next.value.command).toBe('Cancel');
      await next.value.receipt.ack();
    }
    expect(await delivery).toBe('Delivered');
    expect(oldEntries).toEqual([]);
    await replacement.close();
  });

  it('without signals: supportsDispatchSignals() is false and pulls return []', async () => {
    store = new MemoryMailboxStore({ signals: false });
    expect(store.supportsDispatchSignals()).toBe(false);
    await store.enqueue({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: Date.now() });
    expect(await store.pullDispatchSignals(10, 50)).toEqual([]);
  });

  it('after close, operations fail with Io and open streams end', async () => {
    store = new MemoryMailboxStore();
    const stream = await store.openLiveChannel('t-close');
    const ended = (async () => {
      for await (const _entry of stream) {
        // nothing arrives
      }
    })();
    await store.close();
    await ended;
    await expect(store.loadDispatch('d1')).rejects.toMatchObject({ kind: 'Io' });
    await store.close(); // idempotent
  });
});

/**
 * `quietClaimedThreads`: an enqueue onto a thread that holds a claim publishes no signal (the claim's holder
 * takes the thread's next dispatch when its run ends); the sweeper still signals it once its republish delay
 * has passed, and everything else is signalled as without the option. Memory, Redis + Redis Streams and
 * Redis + JetStream, each on its own namespace.
 */
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { FusedMailboxStore } from '../../src/contract/fused.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { DispatchSignalEntry, RunDispatch } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';

const REPUBLISH_MS = 2000;
const SWEEP_MS = 100;
/** Clock slack for "not before X ms" checks (timer and Date.now rounding). */
const SLACK_MS = 5;

type Kind = 'memory' | 'redis-streams' | 'jetstream';

interface Opened {
  store: MailboxStore & FusedMailboxStore;
  close(): Promise<void>;
}

async function open(kind: Kind, quietClaimedThreads: boolean): Promise<Opened> {
  const timing = { sweepIntervalMs: SWEEP_MS, republishAfterMs: REPUBLISH_MS, quietClaimedThreads };
  if (kind === 'memory') {
    const store = new MemoryMailboxStore(timing);
    return { store, close: () => store.close() };
  }
  const store = await createMailboxStore({
    redis: await redisUrl(),
    ...(kind === 'jetstream' ? { nats: await natsUrl() } : {}),
    signals: kind,
    namespace: testNamespace(`quiet-${kind}`),
    ...timing,
  });
  return {
    store,
    close: async () => {
      await store.destroyNamespace();
      await store.close();
    },
  };
}

function dispatch(id: string, thread: string): RunDispatch {
  const now = Date.now();
  return queuedDispatch({ dispatch_id: id, thread_id: thread, run_id: `run-${id}`, created_at: now });
}

/** Pull until a signal for `id` comes (returned unacked) or `timeoutMs` passes; the others are acked. */
async function pullFor(
  store: MailboxStore,
  id: string,
  timeoutMs: number,
): Promise<{ entry: DispatchSignalEntry; at: number } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const batch = await store.pullDispatchSignals(16, Math.max(20, Math.min(500, deadline - Date.now())));
    const at = Date.now();
    let found: DispatchSignalEntry | null = null;
    for (const e of batch) {
      if (found === null && e.dispatch_id === id) found = e;
      else await e.receipt.ack();
    }
    if (found) return { entry: found, at };
  }
  return null;
}

/** Enqueue `first` on `thread`, take its signal and claim it: the thread now holds a claim. */
async function holdThread(store: MailboxStore, first: string, thread: string): Promise<string> {
  await store.enqueue(dispatch(first, thread));
  const signal = await pullFor(store, first, 5000);
  expect(signal, `signal of ${first}`).not.toBeNull();
  const claimed = await store.claimDispatch(first, 'holder', 60_000, Date.now());
  if (!claimed?.claim_token) throw new Error(`claim of ${first} failed`);
  await signal?.entry.receipt.ack();
  return claimed.claim_token;
}

for (const kind of ['memory', 'redis-streams', 'jetstream'] as const) {
  describe(`quietClaimedThreads: ${kind}`, () => {
    it('an enqueue behind a claim gets no signal; the sweeper signals it once due', async () => {
      const { store, close } = await open(kind, true);
      try {
        const token = await holdThread(store, 'd-held', 't');
        const enqueuedAt = Date.now();
        await store.enqueue(dispatch('d-behind', 't'));
        const found = await pullFor(store, 'd-behind', REPUBLISH_MS + 5000);
        expect(found, 'signalled by the sweeper').not.toBeNull();
        expect(found?.at ?? 0).toBeGreaterThanOrEqual(enqueuedAt + REPUBLISH_MS - SLACK_MS);
        await found?.entry.receipt.ack();
        // The holder's chained claim takes it as soon as its run ends.
        const next = await store.completeAndClaimNext(
          'd-held',
          token,
          { run_id: 'run-d-held', dispatch_instance_id: 'i1', status: 'done' },
          Date.now(),
          { threadId: 't', consumerId: 'holder', leaseMs: 60_000, dispatchInstanceId: 'i2' },
        );
        expect(next.next?.dispatch_id).toBe('d-behind');
      } finally {
        await close();
      }
    });

    it('an enqueue onto a thread without a claim, and a requeue, are signalled at once', async () => {
      const { store, close } = await open(kind, true);
      try {
        await store.enqueue(dispatch('d-idle', 't-idle'));
        const idle = await pullFor(store, 'd-idle', 5000);
        expect(idle, 'signal of an enqueue onto an idle thread').not.toBeNull();
        const claimed = await store.claimDispatch('d-idle', 'holder', 60_000, Date.now());
        if (!claimed?.claim_token) throw new Error('claim failed');
        await idle?.entry.receipt.ack();
        const before = Date.now();
        await store.nack('d-idle', claimed.claim_token, Date.now(), 'transient', Date.now());
        const again = await pullFor(store, 'd-idle', 5000);
        expect(again, 'signal of the requeue').not.toBeNull();
        expect(again?.at ?? Infinity).toBeLessThan(before + REPUBLISH_MS);
        await again?.entry.receipt.ack();
      } finally {
        await close();
      }
    });

    it('without the option, an enqueue behind a claim is signalled at once', async () => {
      const { store, close } = await open(kind, false);
      try {
        await holdThread(store, 'd-held', 't');
        const before = Date.now();
        await store.enqueue(dispatch('d-behind', 't'));
        const found = await pullFor(store, 'd-behind', 5000);
        expect(found).not.toBeNull();
        expect(found?.at ?? Infinity).toBeLessThan(before + REPUBLISH_MS);
        await found?.entry.receipt.ack();
      } finally {
        await close();
      }
    });
  });
}

describe('quietClaimedThreads is checked', () => {
  it('a value that is not a boolean is a Validation error', async () => {
    expect(() => new MemoryMailboxStore({ quietClaimedThreads: 'yes' as unknown as boolean })).toThrow(
      /quietClaimedThreads must be a boolean/,
    );
    const redis = await redisUrl();
    await expect(
      createMailboxStore({ redis, quietClaimedThreads: 1 as unknown as boolean }),
    ).rejects.toSatisfy((e: unknown) => e instanceof StorageError && e.kind === 'Validation');
  });
});

/**
 * `quietClaimedThreads`: an enqueue onto a thread that holds a claim publishes no signal (the claim's holder
 * takes the thread's next dispatch when its run ends); the sweeper still signals it once its republish delay
 * has passed, and everything else is signalled as without the option. Memory, Redis + Redis Streams and
 * Redis + JetStream, each on its own namespace.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { FusedMailboxStore } from '../../src/contract/fused.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { DispatchSignalEntry, RunDispatch } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore, type RedisMailboxStore } from '../../src/redis/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { pullFor } from '../support/signals.js';

const REPUBLISH_MS = 2000;
const SWEEP_MS = 100;
/** Clock slack for "not before X ms" checks (timer and Date.now rounding). */
const SLACK_MS = 5;

type Kind = 'memory' | 'redis-streams' | 'jetstream';

interface Opened {
  store: MailboxStore & FusedMailboxStore;
  close(): Promise<void>;
}

interface Timing {
  republishAfterMs?: number;
  sweepIntervalMs?: number;
  partitions?: number;
}

async function open(kind: Kind, quietClaimedThreads: boolean, timing: Timing = {}): Promise<Opened> {
  const { partitions, ...rest } = timing;
  const options = {
    sweepIntervalMs: SWEEP_MS,
    republishAfterMs: REPUBLISH_MS,
    ...rest,
    quietClaimedThreads,
  };
  if (kind === 'memory') {
    const store = new MemoryMailboxStore(options);
    return { store, close: () => store.close() };
  }
  const store = await createMailboxStore({
    redis: await redisUrl(),
    ...(kind === 'jetstream' ? { nats: await natsUrl() } : {}),
    signals: kind,
    namespace: testNamespace(`quiet-${kind}`),
    ...(partitions === undefined ? {} : { partitions }),
    ...options,
  });
  return {
    store,
    close: async () => {
      await store.destroyNamespace();
      await store.close();
    },
  };
}

function dispatch(id: string, thread: string, availableAt?: number): RunDispatch {
  const now = Date.now();
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: now,
    ...(availableAt === undefined ? {} : { available_at: availableAt }),
  });
}

/** Enqueue `first` on `thread`, take its signal and claim it: the thread now holds a claim. */
async function holdThread(
  store: MailboxStore,
  first: string,
  thread: string,
  { leaseMs = 60_000, maxAttempts }: { leaseMs?: number; maxAttempts?: number } = {},
): Promise<string> {
  await store.enqueue(
    maxAttempts === undefined
      ? dispatch(first, thread)
      : { ...dispatch(first, thread), max_attempts: maxAttempts },
  );
  const signal = await pullFor(store, first, 5000);
  expect(signal, `signal of ${first}`).not.toBeNull();
  const claimed = await store.claimDispatch(first, 'holder', leaseMs, Date.now());
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

/**
 * The hand-off: whatever ends a claim without claiming its thread again signals the thread's head. The
 * periodic sweep is a minute away and the republish delay 20 s, so a signal within a few seconds is the
 * hand-off's (with JetStream: the sweep the store asks for at once). Also on 2 partitions.
 */
const HAND_OFF: Timing = { republishAfterMs: 20_000, sweepIntervalMs: 60_000 };
/** Well below the republish delay and the sweep interval, with room for a loaded machine. */
const HAND_OFF_WITHIN_MS = 8_000;
const RESULT = { run_id: 'run-d-held', dispatch_instance_id: 'i1', status: 'done' } as const;

/** The hand-off signalled dispatch `id` within `HAND_OFF_WITHIN_MS` of `endedAt` (the signal is then acked). */
async function expectHandedOff(store: MailboxStore, id: string, endedAt: number): Promise<void> {
  const found = await pullFor(store, id, HAND_OFF_WITHIN_MS);
  expect(found, 'the head signalled at the hand-off').not.toBeNull();
  expect(found?.at ?? Infinity).toBeLessThan(endedAt + HAND_OFF_WITHIN_MS);
  await found?.entry.receipt.ack();
}

const handOffCases = [
  ['memory', undefined],
  ['redis-streams', undefined],
  ['jetstream', undefined],
  ['jetstream', 2],
  ['redis-streams', 2],
] as const;

for (const [kind, partitions] of handOffCases) {
  describe(`quietClaimedThreads hand-off: ${kind}${partitions ? `, ${partitions} partitions` : ''}`, () => {
    const openQuiet = (): Promise<Opened> =>
      open(kind, true, partitions === undefined ? HAND_OFF : { ...HAND_OFF, partitions });

    it('a chained claim takes the dispatch behind the claim without any signal', async () => {
      const { store, close } = await openQuiet();
      try {
        const token = await holdThread(store, 'd-held', 't');
        await store.enqueue(dispatch('d-behind', 't'));
        const next = await store.completeAndClaimNext('d-held', token, RESULT, Date.now(), {
          threadId: 't',
          consumerId: 'holder',
          leaseMs: 60_000,
          dispatchInstanceId: 'i2',
        });
        expect(next.next?.dispatch_id).toBe('d-behind');
        expect(await pullFor(store, 'd-behind', 300), 'no signal for a dispatch chained').toBeNull();
      } finally {
        await close();
      }
    });

    it('an ack without a chained claim signals the head of the thread, and only the head', async () => {
      const { store, close } = await openQuiet();
      try {
        const token = await holdThread(store, 'd-held', 't');
        await store.enqueue(dispatch('d-behind', 't'));
        await store.enqueue(dispatch('d-last', 't'));
        const endedAt = Date.now();
        await store.ack('d-held', token, endedAt);
        await expectHandedOff(store, 'd-behind', endedAt);
        expect(await pullFor(store, 'd-last', 300), 'nothing for the dispatch behind the head').toBeNull();
      } finally {
        await close();
      }
    });

    it('a head whose own signal was taken while the thread was held is signalled again', async () => {
      const { store, close } = await openQuiet();
      try {
        // Both enqueued onto an idle thread, so both are signalled; the second one's signal is taken
        // (and acked, as a node does for a thread it cannot claim) while the first holds the thread.
        await store.enqueue(dispatch('d-first', 't'));
        await store.enqueue(dispatch('d-second', 't'));
        const held = new Map<string, DispatchSignalEntry>();
        const deadline = Date.now() + 5000;
        while (held.size < 2 && Date.now() < deadline) {
          for (const e of await store.pullDispatchSignals(16, 200)) {
            if (e.dispatch_id === 'd-first' || e.dispatch_id === 'd-second') held.set(e.dispatch_id, e);
            else await e.receipt.ack();
          }
        }
        expect([...held.keys()].sort(), 'both enqueue signals').toEqual(['d-first', 'd-second']);
        const claimed = await store.claimDispatch('d-first', 'holder', 60_000, Date.now());
        if (!claimed?.claim_token) throw new Error('claim of d-first failed');
        for (const e of held.values()) await e.receipt.ack();
        const endedAt = Date.now();
        await store.ack('d-first', claimed.claim_token, endedAt);
        await expectHandedOff(store, 'd-second', endedAt);
      } finally {
        await close();
      }
    });

    it('a claim superseded by a newer epoch hands its thread off', async () => {
      const { store, close } = await openQuiet();
      try {
        const token = await holdThread(store, 'd-held', 't');
        await store.interrupt('t', Date.now());
        await store.enqueue(dispatch('d-after', 't'));
        const endedAt = Date.now();
        // The holder's ack finds its claim stale: it is superseded, which ends the claim.
        await expect(store.ack('d-held', token, endedAt)).rejects.toSatisfy(
          (e: unknown) => e instanceof StorageError && e.kind === 'VersionConflict',
        );
        expect((await store.loadDispatch('d-held'))?.status).toBe('Superseded');
        await expectHandedOff(store, 'd-after', endedAt);
      } finally {
        await close();
      }
    });

    it('a lease reclaimed as a dead letter hands its thread off', async () => {
      const { store, close } = await openQuiet();
      try {
        await holdThread(store, 'd-held', 't', { leaseMs: 1, maxAttempts: 1 });
        await store.enqueue(dispatch('d-behind', 't'));
        const endedAt = Date.now();
        const reclaimed = await store.reclaimExpiredLeases(endedAt + 1000, 10);
        expect(reclaimed.map((d) => [d.dispatch_id, d.status])).toEqual([['d-held', 'DeadLetter']]);
        await expectHandedOff(store, 'd-behind', endedAt);
      } finally {
        await close();
      }
    });

    it('a chained claim that finds the next dispatch not yet available hands it off', async () => {
      const { store, close } = await openQuiet();
      try {
        const token = await holdThread(store, 'd-held', 't');
        const enqueuedAt = Date.now();
        const availableAt = enqueuedAt + 1500;
        await store.enqueue(dispatch('d-later', 't', availableAt));
        const next = await store.completeAndClaimNext('d-held', token, RESULT, Date.now(), {
          threadId: 't',
          consumerId: 'holder',
          leaseMs: 60_000,
          dispatchInstanceId: 'i2',
        });
        expect(next.next).toBeNull();
        const found = await pullFor(store, 'd-later', availableAt - Date.now() + HAND_OFF_WITHIN_MS);
        expect(found, 'signalled once available').not.toBeNull();
        expect(found?.at ?? 0).toBeGreaterThanOrEqual(availableAt - SLACK_MS);
        expect(found?.at ?? Infinity).toBeLessThan(availableAt + HAND_OFF_WITHIN_MS);
        await found?.entry.receipt.ack();
      } finally {
        await close();
      }
    });
  });
}

describe('quietClaimedThreads hand-off failure', () => {
  it('a hand-off that fails leaves the call that ended the claim and the status counters intact', async () => {
    const store = (await createMailboxStore({
      redis: await redisUrl(),
      signals: 'redis-streams',
      namespace: testNamespace('quiet-handoff-fails'),
      quietClaimedThreads: true,
    })) as RedisMailboxStore;
    const admin = new Redis(await redisUrl());
    try {
      const token = await holdThread(store, 'd-held', 't');
      // The thread's ready set as a string: the hand-off's read of it fails with WRONGTYPE.
      const ready = `${store.keys.prefix}tq:t`;
      await admin.set(ready, 'not a sorted set');
      await store.ack('d-held', token, Date.now());
      expect((await store.loadDispatch('d-held'))?.status).toBe('Acked');
      expect(await store.countDispatchesByStatus('Claimed')).toBe(0);
      expect(await store.countDispatchesByStatus('Acked')).toBe(1);
      await admin.del(ready);
    } finally {
      admin.disconnect();
      await store.destroyNamespace();
      await store.close();
    }
  });
});

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

/**
 * Each fused operation (src/contract/fused.ts) against the sequential pair it stands for, on the memory
 * and the Redis store: the same return value, the same error (kind, message, versions) and the same state
 * afterwards, in the normal case and in every failure case of the pair.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl } from '../support/servers.js';
import { isFusedStore } from '../../src/contract/fused.js';
import type { FusedMailboxStore } from '../../src/contract/fused.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch, RunDispatchResult } from '../../src/contract/types.js';
import {
  BACKENDS,
  TokenBook,
  claimDispatchThenStart,
  claimThenStart,
  completeThenClaimNext,
  outcome,
  plainNext,
  redisBackend,
  resultThenAck,
  snapshot,
  type FusedFixture,
} from './support.js';

const LEASE = 1000;
const THREADS = ['t1', 't2'];

function dispatch(id: string, thread: string, extra: Partial<RunDispatch> = {}): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: 100,
    ...extra,
  });
}

function result(id: string, extra: Partial<RunDispatchResult> = {}): RunDispatchResult {
  return {
    run_id: `run-${id}`,
    dispatch_instance_id: 'inst-1',
    status: 'done',
    termination: { type: 'natural_end' },
    response: 'fine',
    ...extra,
  };
}

/** The store's own claim token of `id` (each store mints its own), or a token it never minted. */
async function tokenOf(store: MailboxStore, id: string): Promise<string> {
  return (await store.loadDispatch(id))?.claim_token ?? 'no-token';
}

describe.each(BACKENDS)('fused operations on $name', (backend) => {
  const open: FusedFixture[] = [];
  afterEach(async () => {
    for (const fx of open.splice(0)) await fx.cleanup();
  });

  /**
   * Run `setup` on two fresh stores, then the fused call on one and the sequential pair on the other;
   * assert identical outcomes and identical state. Returns the (normalized) outcome.
   */
  async function compare(
    setup: (fx: FusedFixture) => Promise<unknown>,
    fused: (store: FusedMailboxStore) => Promise<unknown>,
    sequential: (store: MailboxStore) => Promise<unknown>,
  ): Promise<unknown> {
    const a = await backend.open();
    open.push(a);
    const b = await backend.open();
    open.push(b);
    const bookA = new TokenBook();
    const bookB = new TokenBook();
    await setup(a);
    await setup(b);
    // Mint the setup's tokens in the same order in both books.
    await snapshot(a.store, THREADS, bookA);
    await snapshot(b.store, THREADS, bookB);
    const got = await outcome(() => fused(a.store), bookA);
    const want = await outcome(() => sequential(b.store), bookB);
    expect(got).toEqual(want);
    expect(await snapshot(a.store, THREADS, bookA)).toEqual(await snapshot(b.store, THREADS, bookB));
    return got;
  }

  it('is a fused store', async () => {
    const fx = await backend.open();
    open.push(fx);
    expect(isFusedStore(fx.store)).toBe(true);
  });

  describe('claimAndStart = claim(.., 1) + recordDispatchStart', () => {
    it('claims the head of the queue and starts it', async () => {
      const got = await compare(
        async ({ store }) => {
          await store.enqueue(dispatch('low', 't1', { priority: 200 }));
          await store.enqueue(dispatch('high', 't1', { priority: 1 }));
        },
        (s) => s.claimAndStart('t1', 'c1', LEASE, 1000, 'inst-a'),
        (s) => claimThenStart(s, 't1', 'c1', LEASE, 1000, 'inst-a'),
      );
      expect(got).toMatchObject({
        ok: {
          dispatch_id: 'high',
          status: 'Claimed',
          claimed_by: 'c1',
          lease_until: 2000,
          dispatch_instance_id: 'inst-a',
          run_status: 'running',
          updated_at: 1000,
        },
      });
    });

    it('nothing claimable: empty thread, unknown thread, not yet available, thread busy', async () => {
      for (const [setup, thread] of [
        [async () => undefined, 't1'],
        [
          async ({ store }: FusedFixture) => store.enqueue(dispatch('later', 't1', { available_at: 5000 })),
          't1',
        ],
        [
          async ({ store }: FusedFixture) => {
            await store.enqueue(dispatch('a', 't1'));
            await store.enqueue(dispatch('b', 't1'));
            await store.claim('t1', 'other', LEASE, 900, 1);
          },
          't1',
        ],
      ] as const) {
        const got = await compare(
          setup,
          (s) => s.claimAndStart(thread, 'c1', LEASE, 1000, 'inst-a'),
          (s) => claimThenStart(s, thread, 'c1', LEASE, 1000, 'inst-a'),
        );
        expect(got).toEqual({ ok: null });
      }
    });

    it('supersedes stale Queued dispatches first, like claim, then claims a current one', async () => {
      const stale = (fx: FusedFixture, id: string): Promise<void> =>
        fx.plantStale({ ...dispatch(id, 't1', { priority: 0 }), dispatch_epoch: 0 });
      const onlyStale = await compare(
        async (fx) => {
          await fx.store.interrupt('t1', 500);
          await stale(fx, 'old');
        },
        (s) => s.claimAndStart('t1', 'c1', LEASE, 1000, 'inst-a'),
        (s) => claimThenStart(s, 't1', 'c1', LEASE, 1000, 'inst-a'),
      );
      expect(onlyStale).toEqual({ ok: null });
      const mixed = await compare(
        async (fx) => {
          await fx.store.interrupt('t1', 500);
          await stale(fx, 'old');
          await fx.store.enqueue(dispatch('new', 't1', { priority: 9 }));
        },
        (s) => s.claimAndStart('t1', 'c1', LEASE, 1000, 'inst-a'),
        (s) => claimThenStart(s, 't1', 'c1', LEASE, 1000, 'inst-a'),
      );
      expect(mixed).toMatchObject({ ok: { dispatch_id: 'new', dispatch_epoch: 1, run_status: 'running' } });
    });

    it('validates every argument before writing anything', async () => {
      const fx = await backend.open();
      open.push(fx);
      await fx.store.enqueue(dispatch('a', 't1'));
      await expect(fx.store.claimAndStart('t1', 'c1', LEASE, 1000, '  ')).rejects.toMatchObject({
        kind: 'Validation',
        message: expect.stringContaining('dispatch_instance_id'),
      });
      await expect(fx.store.claimAndStart('', 'c1', LEASE, 1000, 'i')).rejects.toMatchObject({
        kind: 'Validation',
        message: expect.stringContaining('thread_id'),
      });
      await expect(fx.store.claimAndStart('t1', 'c1', -1, 1000, 'i')).rejects.toMatchObject({
        kind: 'Validation',
        message: expect.stringContaining('lease_ms'),
      });
      await expect(
        fx.store.claimAndStart('t1', 'c1', Number.MAX_SAFE_INTEGER, 1000, 'i'),
      ).rejects.toMatchObject({ kind: 'Validation', message: expect.stringContaining('lease_ms') });
      expect((await fx.store.loadDispatch('a'))?.status).toBe('Queued');
    });
  });

  describe('claimDispatchAndStart = claimDispatch + recordDispatchStart', () => {
    it('claims by id (ignoring available_at) and starts it', async () => {
      const got = await compare(
        ({ store }) => store.enqueue(dispatch('a', 't1', { available_at: 99_999 })),
        (s) => s.claimDispatchAndStart('a', 'c1', LEASE, 1000, 'inst-b'),
        (s) => claimDispatchThenStart(s, 'a', 'c1', LEASE, 1000, 'inst-b'),
      );
      expect(got).toMatchObject({
        ok: { dispatch_id: 'a', status: 'Claimed', dispatch_instance_id: 'inst-b', run_status: 'running' },
      });
    });

    it('not claimed: unknown id, not Queued, thread busy, stale epoch (superseded)', async () => {
      const cases: [(fx: FusedFixture) => Promise<unknown>, string][] = [
        [async () => undefined, 'missing'],
        [
          async ({ store }) => {
            await store.enqueue(dispatch('a', 't1'));
            await store.claim('t1', 'other', LEASE, 900, 1);
          },
          'a',
        ],
        [
          async ({ store }) => {
            await store.enqueue(dispatch('a', 't1'));
            await store.enqueue(dispatch('b', 't1'));
            await store.claim('t1', 'other', LEASE, 900, 1);
          },
          'b',
        ],
        [
          async (fx) => {
            await fx.store.interrupt('t1', 500);
            await fx.plantStale({ ...dispatch('old', 't1'), dispatch_epoch: 0 });
          },
          'old',
        ],
      ];
      for (const [setup, id] of cases) {
        const got = await compare(
          setup,
          (s) => s.claimDispatchAndStart(id, 'c1', LEASE, 1000, 'inst-b'),
          (s) => claimDispatchThenStart(s, id, 'c1', LEASE, 1000, 'inst-b'),
        );
        expect(got).toEqual({ ok: null });
      }
    });

    it('validates the instance id before claiming', async () => {
      const fx = await backend.open();
      open.push(fx);
      await fx.store.enqueue(dispatch('a', 't1'));
      await expect(fx.store.claimDispatchAndStart('a', 'c1', LEASE, 1000, '')).rejects.toMatchObject({
        kind: 'Validation',
        message: expect.stringContaining('dispatch_instance_id'),
      });
      expect((await fx.store.loadDispatch('a'))?.status).toBe('Queued');
    });
  });

  describe('completeAndAck = recordRunResult + ack', () => {
    const claimed = async ({ store }: FusedFixture): Promise<void> => {
      await store.enqueue(dispatch('a', 't1'));
      const [d] = await store.claim('t1', 'c1', LEASE, 900, 1);
      await store.recordDispatchStart('a', d?.claim_token ?? '', 'inst-1', 950);
    };

    it('records the result and acks', async () => {
      const got = await compare(
        claimed,
        async (s) => s.completeAndAck('a', await tokenOf(s, 'a'), result('a'), 1000),
        async (s) => resultThenAck(s, 'a', await tokenOf(s, 'a'), result('a'), 1000),
      );
      expect(got).toEqual({ ok: null });
      const fx = await backend.open();
      open.push(fx);
      await claimed(fx);
      await fx.store.completeAndAck('a', await tokenOf(fx.store, 'a'), result('a', { response: null }), 1000);
      expect(await fx.store.loadDispatch('a')).toMatchObject({
        status: 'Acked',
        claim_token: null,
        run_status: 'done',
        termination: { type: 'natural_end' },
        run_response: null,
        completed_at: 1000,
        updated_at: 1000,
      });
    });

    it('stale epoch: superseded before run result, VersionConflict{epoch, current}', async () => {
      const got = await compare(
        async (fx) => {
          await claimed(fx);
          await fx.store.interrupt('t1', 960);
        },
        async (s) => s.completeAndAck('a', await tokenOf(s, 'a'), result('a'), 1000),
        async (s) => resultThenAck(s, 'a', await tokenOf(s, 'a'), result('a'), 1000),
      );
      expect(got).toMatchObject({ err: 'VersionConflict', expected: 0, actual: 1 });
    });

    it('wrong token, run_id mismatch, unknown dispatch, already acked: same error, nothing changes', async () => {
      const cases: [
        (fx: FusedFixture) => Promise<unknown>,
        (s: MailboxStore) => Promise<[string, string]>,
        RunDispatchResult,
        string,
      ][] = [
        [claimed, async () => ['a', 'not-the-token'], result('a'), 'VersionConflict'],
        [
          claimed,
          async (s) => ['a', await tokenOf(s, 'a')],
          result('a', { run_id: 'other-run' }),
          'Validation',
        ],
        [async () => undefined, async () => ['missing', 'tok'], result('missing'), 'NotFound'],
        [
          async (fx) => {
            await claimed(fx);
            const token = await tokenOf(fx.store, 'a');
            await fx.store.ack('a', token, 960);
          },
          async () => ['a', 'no-token'],
          result('a'),
          'VersionConflict',
        ],
      ];
      for (const [setup, target, r, kind] of cases) {
        const got = await compare(
          setup,
          async (s) => {
            const [id, token] = await target(s);
            return s.completeAndAck(id, token, r, 1000);
          },
          async (s) => {
            const [id, token] = await target(s);
            return resultThenAck(s, id, token, r, 1000);
          },
        );
        expect(got).toMatchObject({ err: kind });
      }
    });

    it('validates the result before touching the record', async () => {
      const fx = await backend.open();
      open.push(fx);
      await claimed(fx);
      const token = await tokenOf(fx.store, 'a');
      const bad = { ...result('a'), status: 'exploded' } as unknown as RunDispatchResult;
      await expect(fx.store.completeAndAck('a', token, bad, 1000)).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(fx.store.completeAndAck('a', token, result('a'), -5)).rejects.toMatchObject({
        kind: 'Validation',
        message: expect.stringContaining('now'),
      });
      expect((await fx.store.loadDispatch('a'))?.run_status).toBe('running');
    });
  });

  describe('completeAndClaimNext = completeAndAck + claimAndStart', () => {
    const twoQueued = async ({ store }: FusedFixture): Promise<void> => {
      await store.enqueue(dispatch('a', 't1'));
      await store.enqueue(dispatch('b', 't1', { created_at: 101 }));
      await store.enqueue(dispatch('c', 't2', { created_at: 102 }));
      const [d] = await store.claim('t1', 'c1', LEASE, 900, 1);
      await store.recordDispatchStart('a', d?.claim_token ?? '', 'inst-1', 950);
    };
    const nextOf = (threadId: string) => ({
      threadId,
      consumerId: 'c1',
      leaseMs: LEASE,
      dispatchInstanceId: 'inst-2',
    });
    const fusedCall =
      (id: string, r: RunDispatchResult, threadId: string, token?: string) => async (s: FusedMailboxStore) =>
        plainNext(
          await s.completeAndClaimNext(id, token ?? (await tokenOf(s, id)), r, 1000, nextOf(threadId)),
        );
    const sequentialCall =
      (id: string, r: RunDispatchResult, threadId: string, token?: string) => async (s: MailboxStore) =>
        plainNext(
          await completeThenClaimNext(s, id, token ?? (await tokenOf(s, id)), r, 1000, nextOf(threadId)),
        );

    it("acks the finished run and starts the thread's next dispatch", async () => {
      const got = await compare(
        twoQueued,
        fusedCall('a', result('a'), 't1'),
        sequentialCall('a', result('a'), 't1'),
      );
      expect(got).toMatchObject({
        ok: {
          next: {
            dispatch_id: 'b',
            status: 'Claimed',
            claimed_by: 'c1',
            lease_until: 1000 + LEASE,
            run_status: 'running',
            dispatch_instance_id: 'inst-2',
          },
        },
      });
    });

    it('claims on any thread it is given, and answers next: null when nothing is claimable', async () => {
      expect(
        await compare(twoQueued, fusedCall('a', result('a'), 't2'), sequentialCall('a', result('a'), 't2')),
      ).toMatchObject({ ok: { next: { dispatch_id: 'c' } } });
      expect(
        await compare(
          twoQueued,
          fusedCall('a', result('a'), 'empty-thread'),
          sequentialCall('a', result('a'), 'empty-thread'),
        ),
      ).toEqual({ ok: { next: null } });
      // The next dispatch's thread still holds a claim (the finished run was on another thread).
      expect(
        await compare(
          async (fx) => {
            await twoQueued(fx);
            await fx.store.claim('t2', 'c9', LEASE, 960, 1);
          },
          fusedCall('a', result('a'), 't2'),
          sequentialCall('a', result('a'), 't2'),
        ),
      ).toEqual({ ok: { next: null } });
    });

    it("supersedes the next thread's stale work as claim does", async () => {
      const got = await compare(
        async (fx) => {
          await twoQueued(fx);
          await fx.store.interrupt('t2', 960);
          await fx.plantStale(dispatch('old', 't2', { created_at: 50, dispatch_epoch: 0 }));
          await fx.store.enqueue(dispatch('fresh', 't2', { created_at: 103, dispatch_epoch: 1 }));
        },
        fusedCall('a', result('a'), 't2'),
        sequentialCall('a', result('a'), 't2'),
      );
      expect(got).toMatchObject({ ok: { next: { dispatch_id: 'fresh' } } });
    });

    it('a failing completion throws its error and claims nothing', async () => {
      const cases: [(fx: FusedFixture) => Promise<unknown>, RunDispatchResult, string | undefined, string][] =
        [
          [twoQueued, result('a'), 'not-the-token', 'VersionConflict'],
          [twoQueued, result('a', { run_id: 'other-run' }), undefined, 'Validation'],
          [
            async (fx) => {
              await twoQueued(fx);
              await fx.store.interrupt('t1', 960);
            },
            result('a'),
            undefined,
            'VersionConflict',
          ],
        ];
      for (const [setup, r, token, kind] of cases) {
        const got = await compare(setup, fusedCall('a', r, 't1', token), sequentialCall('a', r, 't1', token));
        expect(got).toMatchObject({ err: kind });
      }
      const got = await compare(
        async () => undefined,
        fusedCall('missing', result('missing'), 't1', 'tok'),
        sequentialCall('missing', result('missing'), 't1', 'tok'),
      );
      expect(got).toMatchObject({ err: 'NotFound' });
    });

    it('validates the next claim before touching anything', async () => {
      const fx = await backend.open();
      open.push(fx);
      await twoQueued(fx);
      const token = await tokenOf(fx.store, 'a');
      for (const [next, field] of [
        [{ ...nextOf('t1'), threadId: '' }, 'next.thread_id'],
        [{ ...nextOf('t1'), consumerId: 7 }, 'next.consumer_id'],
        [{ ...nextOf('t1'), leaseMs: -1 }, 'next.lease_ms'],
        [{ ...nextOf('t1'), leaseMs: Number.MAX_SAFE_INTEGER }, 'next.lease_ms'],
        [{ ...nextOf('t1'), dispatchInstanceId: ' ' }, 'next.dispatch_instance_id'],
        [null, 'next'],
      ] as const) {
        await expect(
          fx.store.completeAndClaimNext('a', token, result('a'), 1000, next as never),
        ).rejects.toMatchObject({ kind: 'Validation', message: expect.stringContaining(field) });
      }
      expect(await fx.store.loadDispatch('a')).toMatchObject({ status: 'Claimed', run_status: 'running' });
      expect((await fx.store.loadDispatch('b'))?.status).toBe('Queued');
    });
  });
});

describe('completeAndClaimNext on Redis: a claim that fails after the completion', () => {
  it('keeps the completion and answers the claim error (a corrupt next record: Serialization)', async () => {
    const fx = await redisBackend.open();
    try {
      const store = fx.store as RedisMailboxStore;
      await store.enqueue(dispatch('a', 't1'));
      await store.enqueue(dispatch('b', 't2'));
      const [d] = await store.claim('t1', 'c1', LEASE, 900, 1);
      await store.recordDispatchStart('a', d?.claim_token ?? '', 'inst-1', 950);
      const raw = new Redis(await redisUrl(), { maxRetriesPerRequest: 1 });
      try {
        await raw.hset(store.keys.record('b'), 'status', 'Exploded');
      } finally {
        raw.disconnect();
      }
      const got = await store.completeAndClaimNext('a', d?.claim_token ?? '', result('a'), 1000, {
        threadId: 't2',
        consumerId: 'c1',
        leaseMs: LEASE,
        dispatchInstanceId: 'inst-2',
      });
      expect(got.next).toBeNull();
      expect(got.claimError).toBeInstanceOf(StorageError);
      expect(got.claimError).toMatchObject({
        kind: 'Serialization',
        message: expect.stringContaining("'b'"),
      });
      expect((await store.loadDispatch('a'))?.status).toBe('Acked');
    } finally {
      await fx.cleanup();
    }
  });
});

/**
 * Each fused operation (src/contract/fused.ts) against the sequential pair it stands for, on the memory
 * and the Redis store: the same return value, the same error (kind, message, versions) and the same state
 * afterwards, in the normal case and in every failure case of the pair.
 */
import { afterEach, describe, expect, it } from 'vitest';
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
  outcome,
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
});

/**
 * The hand-back store additions the Mailbox relies on (src/contract/fused.ts `HandBackMailboxStore`), on both
 * built-in stores: caller-minted claim tokens on every claim variant, `releaseClaim` (by dispatch or by
 * thread; attempt count unchanged; stale claims superseded; a token holding nothing is not an error) and
 * `listClaimedByRunId`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHandBackStore, type HandBackMailboxStore } from '../../src/contract/fused.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';

const RESULT = (runId: string, instance: string) => ({
  run_id: runId,
  dispatch_instance_id: instance,
  status: 'done' as const,
  termination: { type: 'natural_end' as const },
});

for (const kind of ['memory', 'redis'] as const) {
  describe(`hand-back additions on the ${kind} store`, () => {
    let store: HandBackMailboxStore;
    let redis: RedisMailboxStore | null = null;
    let n = 0;
    /** A fresh thread with one Queued dispatch per id given. */
    const thread = async (...ids: string[]): Promise<string> => {
      const t = `hb-${kind}-${++n}`;
      for (const [i, id] of ids.entries()) {
        await store.enqueue(
          queuedDispatch({
            dispatch_id: `${t}-${id}`,
            thread_id: t,
            run_id: `run-${t}-${id}`,
            created_at: 1_000 + i,
          }),
        );
      }
      return t;
    };

    beforeAll(async () => {
      if (kind === 'memory') {
        store = new MemoryMailboxStore({ signals: false });
      } else {
        redis = await createMailboxStore({
          redis: await redisUrl(),
          namespace: testNamespace('hand-back'),
          signals: 'none',
        });
        store = redis;
      }
      expect(isHandBackStore(store)).toBe(true);
    });

    afterAll(async () => {
      await redis?.destroyNamespace();
      await store.close();
    });

    it("every claim variant takes the caller's token", async () => {
      const t = await thread('a', 'b', 'c', 'd');
      const now = Date.now();
      const [a] = await store.claim(t, 'node', 10_000, now, 1, 'tok-a');
      expect(a).toMatchObject({ dispatch_id: `${t}-a`, claim_token: 'tok-a' });
      const b = await store.completeAndClaimNext(`${t}-a`, 'tok-a', RESULT(`run-${t}-a`, 'i-a'), now, {
        threadId: t,
        consumerId: 'node',
        leaseMs: 10_000,
        dispatchInstanceId: 'i-b',
        claimToken: 'tok-b',
      });
      expect(b.next).toMatchObject({ dispatch_id: `${t}-b`, claim_token: 'tok-b', run_status: 'running' });
      await store.completeAndAck(`${t}-b`, 'tok-b', RESULT(`run-${t}-b`, 'i-b'), now);
      expect(await store.claimAndStart(t, 'node', 10_000, now, 'i-c', 'tok-c')).toMatchObject({
        dispatch_id: `${t}-c`,
        claim_token: 'tok-c',
      });
      await store.completeAndAck(`${t}-c`, 'tok-c', RESULT(`run-${t}-c`, 'i-c'), now);
      expect(await store.claimDispatchAndStart(`${t}-d`, 'node', 10_000, now, 'i-d', 'tok-d')).toMatchObject({
        claim_token: 'tok-d',
      });
      const t2 = await thread('e');
      expect(await store.claimDispatch(`${t2}-e`, 'node', 10_000, now, 'tok-e')).toMatchObject({
        claim_token: 'tok-e',
      });
      // Without a token the store mints one, as before.
      const t3 = await thread('f');
      const [f] = await store.claim(t3, 'node', 10_000, now, 1);
      expect(f?.claim_token).toMatch(/\S/);
      await expect(store.claim(t3, 'node', 10_000, now, 1, ' ')).rejects.toMatchObject({
        kind: 'Validation',
      });
    });

    it('releaseClaim by dispatch: back to Queued at now, attempt count and last_error kept, claimable again', async () => {
      const t = await thread('a');
      const claimedAt = Date.now();
      const started = await store.claimAndStart(t, 'node', 10_000, claimedAt, 'inst', 'tok');
      expect(started?.run_status).toBe('running');
      const releasedAt = claimedAt + 5;
      const [released, ...rest] = await store.releaseClaim({ dispatchId: `${t}-a` }, 'tok', releasedAt);
      expect(rest).toEqual([]);
      expect(released).toMatchObject({
        status: 'Queued',
        attempt_count: 0,
        last_error: null,
        available_at: releasedAt,
        updated_at: releasedAt,
        claim_token: null,
        claimed_by: null,
        lease_until: null,
        dispatch_instance_id: null,
        run_status: null,
        completed_at: null,
      });
      expect(await store.loadDispatch(`${t}-a`)).toEqual(released);
      const [again] = await store.claim(t, 'other', 10_000, releasedAt, 1);
      expect(again?.dispatch_id).toBe(`${t}-a`);
    });

    it('releaseClaim by thread releases whatever the token holds there; nothing held is no error', async () => {
      const t = await thread('a', 'b', 'c');
      const now = Date.now();
      expect(await store.claim(t, 'node', 10_000, now, 2, 'tok')).toHaveLength(2);
      expect(await store.releaseClaim({ threadId: t }, 'other-token', now)).toEqual([]);
      expect(await store.releaseClaim({ dispatchId: `${t}-c` }, 'tok', now)).toEqual([]);
      const released = await store.releaseClaim({ threadId: t }, 'tok', now);
      expect(released.map((d) => [d.dispatch_id, d.status]).sort()).toEqual([
        [`${t}-a`, 'Queued'],
        [`${t}-b`, 'Queued'],
      ]);
      expect(await store.releaseClaim({ threadId: t }, 'tok', now)).toEqual([]);
      expect(await store.releaseClaim({ threadId: 'no-such-thread' }, 'tok', now)).toEqual([]);
      expect(await store.listDispatches(t, ['Queued'], 10, 0)).toHaveLength(3);
    });

    it('a claim made stale by an interrupt is superseded, not requeued', async () => {
      const t = await thread('a');
      const now = Date.now();
      await store.claim(t, 'node', 10_000, now, 1, 'tok');
      await store.interrupt(t, now);
      const [d] = await store.releaseClaim({ dispatchId: `${t}-a` }, 'tok', now + 1);
      expect(d).toMatchObject({ status: 'Superseded', dispatch_epoch: 1, claim_token: null });
    });

    it('validates its arguments first', async () => {
      const now = Date.now();
      await expect(store.releaseClaim({ dispatchId: ' ' }, 'tok', now)).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(store.releaseClaim({} as never, 'tok', now)).rejects.toMatchObject({ kind: 'Validation' });
      await expect(
        store.releaseClaim({ dispatchId: 'x', threadId: 'y' } as never, 'tok', now),
      ).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(store.releaseClaim({ threadId: 't' }, '', now)).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(store.releaseClaim({ threadId: 't' }, 'tok', -1)).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(store.listClaimedByRunId('', 1)).rejects.toMatchObject({ kind: 'Validation' });
    });

    it('listClaimedByRunId finds the claimed dispatches of a run, on any thread', async () => {
      const t = await thread('a', 'b');
      const now = Date.now();
      await store.claim(t, 'node', 10_000, now, 1, 'tok');
      expect((await store.listClaimedByRunId(`run-${t}-a`, 10)).map((d) => d.dispatch_id)).toEqual([
        `${t}-a`,
      ]);
      // Queued, or unknown: not listed.
      expect(await store.listClaimedByRunId(`run-${t}-b`, 10)).toEqual([]);
      expect(await store.listClaimedByRunId('no-such-run', 10)).toEqual([]);
      expect(await store.listClaimedByRunId(`run-${t}-a`, 0)).toEqual([]);
    });
  });
}

/**
 * The cancel-request store additions (src/contract/cancel-requests.ts) against every store: memory, Redis,
 * and Redis split into 4 partitions (the request routes by dispatch id, the read by thread id). A request
 * is recorded only for the claim that holds the dispatch; the read carries it with the thread's epoch; a
 * later request replaces it; a purge that leaves the thread without records forgets it; corrupt state read
 * back is a Serialization error, bad input a Validation error.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCancelRequestStore, type CancelRequestMailboxStore } from '../../src/contract/cancel-requests.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { errorOf } from '../support/storage-error.js';
import type { MailboxStore } from '../../src/contract/store.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore, type RedisKeys } from '../../src/redis/index.js';
import type { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { redisUrl, testNamespace } from '../support/servers.js';

interface Fixture {
  store: MailboxStore;
  /** Write a raw `cancel` field on the thread's state (Redis only). */
  corrupt?: (threadId: string, value: string) => Promise<void>;
  cleanup(): Promise<void>;
}

const LEASE = 30_000;

function describeCancelRequests(name: string, redis: boolean, make: () => Promise<Fixture>): void {
  describe(`cancel requests: ${name}`, () => {
    let fixture: Fixture;
    let store: CancelRequestMailboxStore;

    beforeEach(async () => {
      fixture = await make();
      if (!isCancelRequestStore(fixture.store)) throw new Error('not a CancelRequestMailboxStore');
      store = fixture.store;
    });
    afterEach(() => fixture.cleanup());

    async function claimed(id: string, thread: string): Promise<string> {
      const at = Date.now() - 1_000;
      await store.enqueue(
        queuedDispatch({
          dispatch_id: id,
          thread_id: thread,
          run_id: `${id}-run`,
          created_at: at,
          updated_at: at,
          available_at: at,
        }),
      );
      const claim = await store.claimDispatch(id, 'c1', LEASE, Date.now());
      if (!claim?.claim_token) throw new Error('claim failed');
      return claim.claim_token;
    }

    it('records a request for the claim that holds the dispatch, read back with the epoch', async () => {
      expect(await store.readRunControl('t1')).toEqual({ epoch: 0, cancelToken: null });
      const token = await claimed('d1', 't1');
      expect(await store.requestRunCancel('d1', token)).toBe(true);
      expect(await store.readRunControl('t1')).toEqual({ epoch: 0, cancelToken: token });
      // The record is unchanged: still Claimed by the same token.
      const record = await store.loadDispatch('d1');
      expect(record).toMatchObject({ status: 'Claimed', claim_token: token });
      // An interrupt moves the epoch; the read carries both.
      await store.interrupt('t1', Date.now());
      expect(await store.readRunControl('t1')).toEqual({ epoch: 1, cancelToken: token });
      expect(await store.currentDispatchEpoch('t1')).toBe(1);
    });

    it('refuses other claims, other statuses and unknown ids without changing anything', async () => {
      const token = await claimed('d2', 't2');
      expect(await store.requestRunCancel('d2', 'another-token')).toBe(false);
      expect(await store.requestRunCancel('missing', token)).toBe(false);
      expect((await store.readRunControl('t2')).cancelToken).toBeNull();
      await store.ack('d2', token, Date.now());
      expect(await store.requestRunCancel('d2', token)).toBe(false);
      expect((await store.readRunControl('t2')).cancelToken).toBeNull();
      // A Queued dispatch has no claim to cancel.
      const at = Date.now();
      await store.enqueue(
        queuedDispatch({ dispatch_id: 'd3', thread_id: 't2', run_id: 'r3', created_at: at, updated_at: at }),
      );
      expect(await store.requestRunCancel('d3', token)).toBe(false);
      expect((await store.readRunControl('t2')).cancelToken).toBeNull();
    });

    it('a later request replaces the earlier one; a purge that empties the thread forgets it', async () => {
      const first = await claimed('d4', 't4');
      expect(await store.requestRunCancel('d4', first)).toBe(true);
      await store.ack('d4', first, Date.now());
      const second = await claimed('d5', 't4');
      expect((await store.readRunControl('t4')).cancelToken).toBe(first);
      expect(await store.requestRunCancel('d5', second)).toBe(true);
      expect((await store.readRunControl('t4')).cancelToken).toBe(second);
      await store.ack('d5', second, Date.now());
      expect(await store.purgeTerminal(Date.now() + 1)).toBe(2);
      expect(await store.readRunControl('t4')).toEqual({ epoch: 0, cancelToken: null });
    });

    it('answers bad input with Validation errors', async () => {
      for (const bad of ['', 42, null]) {
        expect((await errorOf(() => store.requestRunCancel(bad as string, 'tok'))).kind).toBe('Validation');
        expect((await errorOf(() => store.requestRunCancel('d', bad as string))).kind).toBe('Validation');
        expect((await errorOf(() => store.readRunControl(bad as string))).kind).toBe('Validation');
      }
    });

    // Only the Redis stores read state back from outside the process.
    if (redis)
      it('reads a corrupt request back as a Serialization error', async () => {
        await claimed('d6', 't6');
        for (const bad of ['', '   ', 'x'.repeat(100_000)]) {
          await fixture.corrupt!('t6', bad);
          const err = await errorOf(() => store.readRunControl('t6'));
          expect(err.kind).toBe('Serialization');
          expect(err.message).toContain('t6');
        }
      });
  });
}

function redisFixture(label: string, partitions?: number) {
  return async (): Promise<Fixture> => {
    const url = await redisUrl();
    const store = await createMailboxStore({
      redis: url,
      namespace: testNamespace(label),
      signals: 'none',
      ...(partitions === undefined ? {} : { partitions }),
    });
    const keysOf = (thread: string): RedisKeys =>
      partitions === undefined ? store.keys : (store as PartitionedRedisMailboxStore).keysForThread(thread);
    return {
      store,
      corrupt: async (thread, value) => {
        const raw = new Redis(url);
        try {
          await raw.hset(keysOf(thread).thread(thread), 'cancel', value);
        } finally {
          raw.disconnect();
        }
      },
      cleanup: async () => {
        await store.destroyNamespace();
        await store.close();
      },
    };
  };
}

describeCancelRequests('memory', false, async () => {
  const store = new MemoryMailboxStore({ signals: false });
  return { store, cleanup: () => store.close() };
});
describeCancelRequests('redis', true, redisFixture('cancel-req'));
describeCancelRequests('redis, 4 partitions', true, redisFixture('cancel-req-part', 4));

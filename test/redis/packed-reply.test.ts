/**
 * The claim functions answer a record as one NUL-joined string (cheap for the client to decode) and fall
 * back to the field/value list when a value holds a NUL byte itself. Either way the caller gets the exact
 * record, equal to what `loadDispatch` reads from the hash.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, doneResult, openFixture, type RedisFixture } from './helpers.js';

let fx: RedisFixture;
beforeEach(async () => {
  fx = await openFixture('redis-packed', { signals: 'redis-streams' });
});
afterEach(async () => {
  await fx.cleanup();
});

/** d1 on t1 failed once with `error`, so it is Queued again with that last_error. */
async function nackedWith(error: string): Promise<void> {
  await fx.store.enqueue(dispatch('d1', 't1', 1000));
  const first = await fx.store.claimAndStart('t1', 'c', 1000, 2000, 'inst-0');
  await fx.store.nack('d1', first?.claim_token as string, 2000, error, 2000);
}

describe('record replies of the claim functions', () => {
  for (const [label, error] of [
    ['plain values (packed reply)', 'boom: timeout'],
    ['a NUL byte in a value (list reply)', 'before\u0000after'],
    ['only NUL bytes in a value', '\u0000\u0000'],
  ] as const) {
    it(`claimAndStart returns the exact record: ${label}`, async () => {
      await nackedWith(error);
      const claimed = await fx.store.claimAndStart('t1', 'c', 1000, 3000, 'inst-1');
      expect(claimed?.last_error).toBe(error);
      expect(claimed).toEqual(await fx.store.loadDispatch('d1'));
    });

    it(`completeAndClaimNext returns the exact next record: ${label}`, async () => {
      await nackedWith(error);
      await fx.store.enqueue(dispatch('d0', 't1', 500));
      const running = await fx.store.claimAndStart('t1', 'c', 1000, 3000, 'inst-1');
      expect(running?.dispatch_id).toBe('d0');
      const { next } = await fx.store.completeAndClaimNext(
        'd0',
        running?.claim_token as string,
        doneResult(running?.run_id as string, 'inst-a'),
        3000,
        { threadId: 't1', consumerId: 'c', leaseMs: 1000, dispatchInstanceId: 'inst-2' },
      );
      expect(next?.dispatch_id).toBe('d1');
      expect(next?.last_error).toBe(error);
      expect(next).toEqual(await fx.store.loadDispatch('d1'));
    });

    it(`claim and claimDispatch return the exact records: ${label}`, async () => {
      await nackedWith(error);
      const [viaClaim] = await fx.store.claim('t1', 'c', 1000, 3000, 1);
      expect(viaClaim?.last_error).toBe(error);
      expect(viaClaim).toEqual(await fx.store.loadDispatch('d1'));
      await fx.store.nack('d1', viaClaim?.claim_token as string, 3000, error, 3000);
      const viaId = await fx.store.claimDispatchAndStart('d1', 'c', 1000, 4000, 'inst-3');
      expect(viaId?.last_error).toBe(error);
      expect(viaId).toEqual(await fx.store.loadDispatch('d1'));
    });
  }
});

/**
 * Servers without Redis Functions run every method as an EVAL script (prelude + body per call). The hot
 * path keeps per-library state between calls when loaded as Functions (counter sums, the last epoch read);
 * as EVAL scripts the same code starts fresh on every call. Both must give the same records and counters.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { createMailboxStore, type RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { dispatch, doneResult, nextClaim } from './helpers.js';

interface Side {
  store: RedisMailboxStore;
  client: Redis;
  /** Calls sent as FCALL and as EVALSHA / EVAL. */
  sent: { fcall: number; eval: number };
}

const opened: Side[] = [];
afterEach(async () => {
  for (const side of opened.splice(0)) {
    try {
      await side.store.destroyNamespace();
    } finally {
      await side.store.close();
      side.client.disconnect();
    }
  }
});

async function open(label: string, evalMode: boolean): Promise<Side> {
  const client = new Redis(await redisUrl(), { maxRetriesPerRequest: 1 });
  if (evalMode) {
    // What a server without Functions answers to FUNCTION LOAD: the runner falls back to EVAL scripts.
    (client as unknown as { function: () => Promise<never> }).function = () =>
      Promise.reject(new Error("ERR unknown command 'FUNCTION'"));
  }
  const sent = { fcall: 0, eval: 0 };
  const counted = client as unknown as Record<'fcall' | 'evalsha' | 'eval', (...args: unknown[]) => unknown>;
  for (const name of ['fcall', 'evalsha', 'eval'] as const) {
    const original = counted[name].bind(client);
    counted[name] = (...args: unknown[]) => {
      sent[name === 'fcall' ? 'fcall' : 'eval']++;
      return original(...args);
    };
  }
  const store = await createMailboxStore({ redis: client, namespace: testNamespace(label), signals: 'none' });
  const side = { store, client, sent };
  opened.push(side);
  return side;
}

/** Any value with its claim tokens (minted per store, so they differ between the two sides) replaced. */
function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value instanceof StorageError) return `${value.kind}: ${value.message}`;
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === 'claim_token' && typeof v === 'string' ? 'token' : scrub(v),
      ]),
    );
  }
  return value;
}

async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return scrub(await call());
  } catch (err) {
    return { error: scrub(err) };
  }
}

/** One scenario through the hot path and its edges; returns every outcome, the final records and counters. */
async function scenario({ store, client }: Side): Promise<unknown[]> {
  const out: unknown[] = [];
  const tokens = new Map<string, string>();
  const remember = (r: RunDispatch | null | undefined): void => {
    if (r?.claim_token) tokens.set(r.dispatch_id, r.claim_token);
  };
  for (const [i, id] of ['a1', 'a2', 'a3'].entries())
    out.push(await outcome(() => store.enqueue(dispatch(id, 'ta', 1000 + i))));
  out.push(await outcome(() => store.enqueue(dispatch('b1', 'tb', 1000, { dedupe_key: 'k' }))));
  out.push(await outcome(() => store.enqueue(dispatch('b2', 'tb', 1001, { dedupe_key: 'k' }))));
  out.push(await outcome(() => store.enqueue(dispatch('b3', 'tb', 1002, { available_at: 5000 }))));

  const first = await store.claimAndStart('ta', 'c1', 1000, 2000, 'inst');
  remember(first);
  out.push(scrub(first));
  let now = 2000;
  let cur = first;
  while (cur) {
    const id = cur.dispatch_id;
    const res = await store.completeAndClaimNext(
      id,
      tokens.get(id)!,
      doneResult(cur.run_id),
      ++now,
      nextClaim('ta'),
    );
    remember(res.next);
    out.push(await outcome(() => Promise.resolve(res)));
    cur = res.next;
  }
  const [b1] = await store.claim('tb', 'c1', 1000, 3000, 1);
  remember(b1);
  out.push(scrub(b1));
  out.push(await outcome(() => store.interrupt('tb', 3001)));
  out.push(await outcome(() => store.ack('b1', tokens.get('b1')!, 3002)));
  out.push(await outcome(() => store.enqueue(dispatch('b4', 'tb', 3003))));
  out.push(await outcome(() => store.claim('tb', 'c1', 1000, 6000, 5)));
  out.push(await outcome(() => store.reclaimExpiredLeases(9000, 10)));
  out.push(await outcome(() => store.purgeTerminal(9000)));
  // The batch scripts: a turn of enqueues (one a duplicate) goes as one enqueue_many, an iteration of chained
  // completions on three threads as one complete_and_claim_next_many.
  const batched = [
    dispatch('c0a', 'tc0', 9100),
    dispatch('c0b', 'tc0', 9101),
    dispatch('c1a', 'tc1', 9102),
    dispatch('c0a', 'tc0', 9103),
    dispatch('c1b', 'tc1', 9104),
    dispatch('c2a', 'tc2', 9105),
  ];
  out.push(await Promise.all(batched.map((d) => outcome(() => store.enqueue(d)))));
  const running: RunDispatch[] = [];
  for (const t of ['tc0', 'tc1', 'tc2']) {
    const r = await store.claimAndStart(t, 'c1', 10_000, 9200, 'inst');
    if (r) running.push(r);
  }
  out.push(
    await Promise.all(
      running.map((r, i) =>
        outcome(() =>
          store.completeAndClaimNext(
            r.dispatch_id,
            i === 1 ? 'wrong-token' : (r.claim_token as string),
            doneResult(r.run_id),
            9300 + i,
            nextClaim(r.thread_id),
          ),
        ),
      ),
    ),
  );
  for (const s of ['Queued', 'Claimed', 'Acked', 'Superseded', 'DeadLetter'] as const) {
    out.push(await outcome(() => store.countDispatchesByStatus(s)));
  }
  out.push(await client.hgetall(store.keys.counts));
  for (const id of ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'b4', 'c0a', 'c0b', 'c1a', 'c1b', 'c2a']) {
    out.push(scrub(await store.loadDispatch(id)));
  }
  out.push(await store.currentDispatchEpoch('tb'));
  return out;
}

describe('EVAL scripts and Functions give the same results', () => {
  it('one scenario through enqueue, the chained completion, interrupt, stale owner writes, reclaim, purge', async () => {
    const f = await open('lua-functions-mode', false);
    const e = await open('lua-eval-mode', true);
    const functions = await scenario(f);
    const evalMode = await scenario(e);
    expect(evalMode).toEqual(functions);
    expect(f.sent.eval).toBe(0);
    expect(e.sent.fcall).toBe(0);
    expect(e.sent.eval).toBeGreaterThan(10);
    // The scenario reaches the edges it is meant to: a stale owner write and a superseded claim.
    expect(JSON.stringify(functions)).toContain('VersionConflict');
    expect(JSON.stringify(functions)).toContain('Superseded');
    expect(JSON.stringify(functions)).toContain('AlreadyExists');
  });
});

/**
 * The model-based test's engine (test/model/model.test.ts, test/cluster/model.test.ts): random operation
 * sequences run through the memory store (the reference model) and a distributed store side by side; every
 * return value, error and resulting record must match. Claim tokens are minted independently by each store,
 * so they are compared by order of first appearance.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatchStatus } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../../src/contract/types.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';

const THREADS = ['t0', 't1', 't.2'];
const DISPATCHES = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
const CONSUMERS = ['c1', 'c2'];

type Op =
  | {
      op: 'enqueue';
      id: string;
      thread: string;
      priority: number;
      created: number;
      delay: number;
      dedupe: string | null;
      max: number;
    }
  | { op: 'claim'; thread: string; consumer: string; lease: number; limit: number }
  | { op: 'claimDispatch'; id: string; consumer: string; lease: number }
  | {
      op: 'ack' | 'recordDispatchStart' | 'deadLetter' | 'extendLease' | 'supersedeClaimed';
      id: string;
      token: number;
    }
  | { op: 'recordRunResult'; id: string; token: number; matchRun: boolean }
  | { op: 'nack'; id: string; token: number; retryIn: number }
  | { op: 'cancel' | 'loadDispatch'; id: string }
  | { op: 'interrupt' | 'interruptDetailed' | 'currentDispatchEpoch'; thread: string }
  | {
      op: 'listDispatches';
      thread: string;
      filter: RunDispatchStatus[] | null;
      limit: number;
      offset: number;
    }
  | { op: 'count'; status: RunDispatchStatus }
  | { op: 'listTerminal'; limit: number; offset: number }
  | { op: 'reclaim' }
  | { op: 'purge'; back: number }
  | { op: 'queuedThreadIds' };

const id = fc.constantFrom(...DISPATCHES);
const thread = fc.constantFrom(...THREADS);
/** Index into the tokens seen so far; -1 = a token no store ever minted. */
const token = fc.integer({ min: -1, max: 6 });
const step = fc.record({ advance: fc.integer({ min: 0, max: 400 }) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('enqueue' as const),
      id,
      thread,
      priority: fc.constantFrom(0, 128, 255),
      created: fc.integer({ min: 0, max: 50 }),
      delay: fc.constantFrom(0, 0, 300),
      dedupe: fc.constantFrom(null, null, 'k1', 'k2'),
      max: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('claim' as const),
      thread,
      consumer: fc.constantFrom(...CONSUMERS),
      lease: fc.constantFrom(100, 1000),
      limit: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('claimDispatch' as const),
      id,
      consumer: fc.constantFrom(...CONSUMERS),
      lease: fc.constantFrom(100, 1000),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'ack' as const,
        'recordDispatchStart' as const,
        'deadLetter' as const,
        'extendLease' as const,
        'supersedeClaimed' as const,
      ),
      id,
      token,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('recordRunResult' as const), id, token, matchRun: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('nack' as const),
      id,
      token,
      retryIn: fc.constantFrom(0, 200, 1000),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constantFrom('cancel' as const, 'loadDispatch' as const), id }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'interrupt' as const,
        'interruptDetailed' as const,
        'currentDispatchEpoch' as const,
      ),
      thread,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('listDispatches' as const),
      thread,
      filter: fc.option(fc.subarray([...RUN_DISPATCH_STATUSES]), { nil: null }),
      limit: fc.integer({ min: 0, max: 4 }),
      offset: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('count' as const),
      status: fc.constantFrom(...RUN_DISPATCH_STATUSES),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('listTerminal' as const),
      limit: fc.integer({ min: 0, max: 4 }),
      offset: fc.integer({ min: 0, max: 2 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reclaim' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('purge' as const), back: fc.constantFrom(0, 500, 5000) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('queuedThreadIds' as const) }) },
);

const programArb = fc.array(fc.tuple(step, opArb), { minLength: 5, maxLength: 40 });

/** Per-store view of minted tokens, so both stores' tokens compare by order of first appearance. */
class TokenBook {
  readonly seen: string[] = [];
  symbol(tok: string): string {
    let i = this.seen.indexOf(tok);
    if (i < 0) i = this.seen.push(tok) - 1;
    return `tok#${i}`;
  }
  pick(i: number): string {
    return i >= 0 && i < this.seen.length ? this.seen[i]! : 'never-minted-token';
  }
}

/** Replace claim tokens in any result by their symbols; keep everything else as is. */
function normalize(value: unknown, book: TokenBook): unknown {
  if (Array.isArray(value)) return value.map((v) => normalize(v, book));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === 'claim_token' && typeof v === 'string' ? book.symbol(v) : normalize(v, book);
    }
    return out;
  }
  return value;
}

async function outcome(run: () => Promise<unknown>, book: TokenBook): Promise<unknown> {
  try {
    const value = await run();
    return { ok: normalize(value ?? null, book) };
  } catch (err) {
    const e = err as { kind?: string; message?: string };
    if (!e.kind) throw err; // a crash, not a StorageError: fail loudly
    return { err: e.kind, message: e.message };
  }
}

function apply(store: MailboxStore, op: Op, now: number, book: TokenBook): Promise<unknown> {
  const tok = (i: number): string => book.pick(i);
  return outcome(async () => {
    switch (op.op) {
      case 'enqueue':
        return store.enqueue(
          queuedDispatch({
            dispatch_id: op.id,
            thread_id: op.thread,
            run_id: `run-${op.id}`,
            created_at: op.created,
            available_at: now + op.delay,
            updated_at: now,
            priority: op.priority,
            dedupe_key: op.dedupe,
            max_attempts: op.max,
          }),
        );
      case 'claim':
        return store.claim(op.thread, op.consumer, op.lease, now, op.limit);
      case 'claimDispatch':
        return store.claimDispatch(op.id, op.consumer, op.lease, now);
      case 'ack':
        return store.ack(op.id, tok(op.token), now);
      case 'recordDispatchStart':
        return store.recordDispatchStart(op.id, tok(op.token), `inst-${now}`, now);
      case 'recordRunResult':
        return store.recordRunResult(
          op.id,
          tok(op.token),
          {
            run_id: op.matchRun ? `run-${op.id}` : 'other-run',
            dispatch_instance_id: `inst-${now}`,
            status: 'done',
            termination: { type: 'natural_end' },
            response: 'ok',
          },
          now,
        );
      case 'deadLetter':
        return store.deadLetter(op.id, tok(op.token), 'dead', now);
      case 'extendLease':
        return store.extendLease(op.id, tok(op.token), 500, now);
      case 'supersedeClaimed':
        return store.supersedeClaimed(op.id, tok(op.token), now, 'model supersede');
      case 'nack':
        return store.nack(op.id, tok(op.token), now + op.retryIn, 'transient', now);
      case 'cancel':
        return store.cancel(op.id, now);
      case 'loadDispatch':
        return store.loadDispatch(op.id);
      case 'interrupt':
        return store.interrupt(op.thread, now);
      case 'interruptDetailed': {
        const d = await store.interruptDetailed(op.thread, now);
        // order of superseded_dispatches is unspecified (§5.11)
        return {
          ...d,
          superseded_dispatches: [...d.superseded_dispatches].sort((a, b) =>
            a.dispatch_id.localeCompare(b.dispatch_id),
          ),
        };
      }
      case 'currentDispatchEpoch':
        return store.currentDispatchEpoch(op.thread);
      case 'listDispatches':
        return store.listDispatches(op.thread, op.filter, op.limit, op.offset);
      case 'count':
        return store.countDispatchesByStatus(op.status);
      case 'listTerminal':
        return store.listTerminalDispatches(op.limit, op.offset);
      case 'reclaim': {
        // selection order is unspecified (§6.1): compare as a set, and only with a limit that takes them all
        const r = await store.reclaimExpiredLeases(now, 100);
        return [...r].sort((a, b) => a.dispatch_id.localeCompare(b.dispatch_id));
      }
      case 'purge':
        return store.purgeTerminal(now - op.back);
      case 'queuedThreadIds':
        return store.queuedThreadIds();
    }
  }, book);
}

async function snapshot(store: MailboxStore, book: TokenBook): Promise<unknown> {
  const records = await Promise.all(DISPATCHES.map((d) => store.loadDispatch(d)));
  const epochs = await Promise.all(THREADS.map((t) => store.currentDispatchEpoch(t)));
  const counts = await Promise.all(RUN_DISPATCH_STATUSES.map((s) => store.countDispatchesByStatus(s)));
  return normalize({ records, epochs, counts, queued: await store.queuedThreadIds() }, book);
}

/** A distributed store the model test can tear down. */
export type ModelStore = MailboxStore & { destroyNamespace(): Promise<void>; close(): Promise<void> };

/**
 * Run `sequences` random programs through the memory store and a fresh store from `open` each, comparing every
 * result and the whole state after every step.
 */
export async function checkModel(open: () => Promise<ModelStore>, sequences: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(programArb, async (program) => {
      const memory = new MemoryMailboxStore();
      const redis = await open();
      const memBook = new TokenBook();
      const redisBook = new TokenBook();
      try {
        let now = 1000;
        for (const [{ advance }, op] of program) {
          now += advance;
          const expected = await apply(memory, op, now, memBook);
          const actual = await apply(redis, op, now, redisBook);
          expect(actual, `${op.op} at ${now}: ${JSON.stringify(op)}`).toEqual(expected);
          expect(await snapshot(redis, redisBook), `state after ${op.op}`).toEqual(
            await snapshot(memory, memBook),
          );
        }
      } finally {
        await memory.close();
        await redis.destroyNamespace();
        await redis.close();
      }
    }),
    { numRuns: sequences },
  );
}

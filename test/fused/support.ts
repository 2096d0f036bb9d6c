/**
 * Shared pieces of the fused-operation tests: the two backends (memory, Redis with signals off, each store
 * in its own namespace), the sequential pairs a fused operation must equal, and outcome normalization
 * (claim tokens are minted independently by each store, so they compare by order of first appearance).
 */
import { Redis } from 'ioredis';
import type { CompletedWithNext, FusedMailboxStore, NextClaim } from '../../src/contract/fused.js';
import { StorageError } from '../../src/contract/errors.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch, RunDispatchResult } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';

export interface FusedFixture {
  store: FusedMailboxStore;
  /** Store a stale-epoch Queued record (the API cannot produce one, contract.md §6.2). */
  plantStale(record: RunDispatch): Promise<void>;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: string;
  open(): Promise<FusedFixture>;
}

export const memoryBackend: Backend = {
  name: 'memory',
  open: async () => {
    const store = new MemoryMailboxStore({ signals: false });
    return {
      store,
      plantStale: (record) => store.plantRecord(record),
      cleanup: () => store.close(),
    };
  },
};

export const redisBackend: Backend = {
  name: 'redis',
  open: async () => {
    const url = await redisUrl();
    const store: RedisMailboxStore = await createMailboxStore({
      redis: url,
      namespace: testNamespace('fused'),
      signals: 'none',
    });
    return {
      store,
      // As an out-of-band writer must (lua/README.md): enqueue, write the old epoch, list it as stale.
      plantStale: async (record) => {
        await store.enqueue(record);
        const raw = new Redis(url, { maxRetriesPerRequest: 1 });
        try {
          await raw.hset(
            store.keys.record(record.dispatch_id),
            'dispatch_epoch',
            String(record.dispatch_epoch),
          );
          await raw.sadd(store.keys.staleQueued(record.thread_id), record.dispatch_id);
        } finally {
          raw.disconnect();
        }
      },
      cleanup: async () => {
        try {
          await store.destroyNamespace();
        } finally {
          await store.close();
        }
      },
    };
  },
};

export const BACKENDS: readonly Backend[] = [memoryBackend, redisBackend];

// ---- the sequential pairs ----

export async function claimThenStart(
  store: MailboxStore,
  threadId: string,
  consumerId: string,
  leaseMs: number,
  now: number,
  instanceId: string,
): Promise<RunDispatch | null> {
  const [claimed] = await store.claim(threadId, consumerId, leaseMs, now, 1);
  if (!claimed) return null;
  await store.recordDispatchStart(claimed.dispatch_id, claimed.claim_token ?? '', instanceId, now);
  return store.loadDispatch(claimed.dispatch_id);
}

export async function claimDispatchThenStart(
  store: MailboxStore,
  dispatchId: string,
  consumerId: string,
  leaseMs: number,
  now: number,
  instanceId: string,
): Promise<RunDispatch | null> {
  const claimed = await store.claimDispatch(dispatchId, consumerId, leaseMs, now);
  if (!claimed) return null;
  await store.recordDispatchStart(claimed.dispatch_id, claimed.claim_token ?? '', instanceId, now);
  return store.loadDispatch(claimed.dispatch_id);
}

export async function resultThenAck(
  store: MailboxStore,
  dispatchId: string,
  claimToken: string,
  result: RunDispatchResult,
  now: number,
): Promise<void> {
  await store.recordRunResult(dispatchId, claimToken, result, now);
  await store.ack(dispatchId, claimToken, now);
}

/** `completeAndClaimNext` as the sequential calls it stands for: the completion, then the claim. */
export async function completeThenClaimNext(
  store: MailboxStore,
  dispatchId: string,
  claimToken: string,
  result: RunDispatchResult,
  now: number,
  next: NextClaim,
): Promise<CompletedWithNext> {
  await resultThenAck(store, dispatchId, claimToken, result, now);
  try {
    return {
      next: await claimThenStart(
        store,
        next.threadId,
        next.consumerId,
        next.leaseMs,
        now,
        next.dispatchInstanceId,
      ),
    };
  } catch (err) {
    if (err instanceof StorageError) return { next: null, claimError: err };
    throw err;
  }
}

/** A `CompletedWithNext` with its error reduced to kind and message, for comparing. */
export function plainNext(r: CompletedWithNext): unknown {
  return r.claimError
    ? { next: r.next, claimError: { kind: r.claimError.kind, message: r.claimError.message } }
    : { next: r.next };
}

// ---- normalization ----

/** Per-store view of minted tokens: both stores' tokens compare by order of first appearance. */
export class TokenBook {
  readonly #seen: string[] = [];

  symbol(token: string): string {
    let i = this.#seen.indexOf(token);
    if (i < 0) i = this.#seen.push(token) - 1;
    return `token#${i}`;
  }

  /** The i-th token this store minted, or one it never minted. */
  pick(i: number): string {
    return this.#seen[i] ?? 'never-minted-token';
  }
}

export function normalize(value: unknown, book: TokenBook): unknown {
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

/** `{ok}` with the normalized value, or `{err, message, expected, actual}` for a StorageError. */
export async function outcome(run: () => Promise<unknown>, book: TokenBook): Promise<unknown> {
  try {
    return { ok: normalize((await run()) ?? null, book) };
  } catch (err) {
    const e = err as { kind?: string; message?: string; expected?: number; actual?: number };
    if (!e.kind) throw err;
    return { err: e.kind, message: e.message, expected: e.expected, actual: e.actual };
  }
}

/** Every record of the given threads plus the status counts, normalized. */
export async function snapshot(
  store: MailboxStore,
  threads: readonly string[],
  book: TokenBook,
): Promise<unknown> {
  const lists = await Promise.all(threads.map((t) => store.listDispatches(t, null, 100, 0)));
  const epochs = await Promise.all(threads.map((t) => store.currentDispatchEpoch(t)));
  const counts = await Promise.all(
    (['Queued', 'Claimed', 'Acked', 'Cancelled', 'Superseded', 'DeadLetter'] as const).map((s) =>
      store.countDispatchesByStatus(s),
    ),
  );
  return normalize({ lists, epochs, counts }, book);
}

/**
 * `awaken-mailbox inspect`: read-only views of a store, printed as JSON — a thread's dispatches (the server's
 * "peek mailbox", contract.md §13.N), one dispatch, or the counts by status and the threads with queued work.
 */
import { StorageError } from '../contract/errors.js';
import { runDispatchToWire } from '../contract/codec.js';
import type { RunDispatchStatus } from '../contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import { openStore } from './backend.js';
import type { BenchStore } from './backend.js';

export interface InspectOptions {
  redis: string;
  namespace: string | null;
  thread: string | null;
  dispatch: string | null;
  status: RunDispatchStatus[] | null;
  limit: number;
  offset: number;
}

export const INSPECT_MAX_LIMIT = 200;

/** `Queued,Claimed` → the statuses, validated. */
export function parseStatusList(text: string): RunDispatchStatus[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const p of parts) {
    if (!(RUN_DISPATCH_STATUSES as readonly string[]).includes(p)) {
      throw StorageError.validation(`--status '${p}' is not one of ${RUN_DISPATCH_STATUSES.join(', ')}`);
    }
  }
  return parts as RunDispatchStatus[];
}

async function withStore<T>(opts: InspectOptions, fn: (store: BenchStore) => Promise<T>): Promise<T> {
  const namespace = opts.namespace ?? undefined;
  const store =
    namespace === undefined
      ? await openDefaultNamespace(opts.redis)
      : await openStore({ kind: 'redis', redis: opts.redis, nats: null, signals: 'none', namespace });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Without `--namespace` the upstream-compatible default keys (`awaken:`) are read. */
async function openDefaultNamespace(redis: string): Promise<BenchStore> {
  const { createMailboxStore } = await import('../redis/create-store.js');
  return createMailboxStore({ redis, signals: 'none' });
}

export async function runInspect(opts: InspectOptions): Promise<Record<string, unknown>> {
  return withStore(opts, async (store) => {
    if (opts.dispatch !== null) {
      const record = await store.loadDispatch(opts.dispatch);
      return { dispatch: record ? runDispatchToWire(record) : null };
    }
    if (opts.thread !== null) {
      const limit = Math.min(Math.max(opts.limit, 1), INSPECT_MAX_LIMIT);
      const [items, epoch] = await Promise.all([
        store.listDispatches(opts.thread, opts.status, limit, opts.offset),
        store.currentDispatchEpoch(opts.thread),
      ]);
      const counts: Partial<Record<RunDispatchStatus, number>> = {};
      for (const d of items) counts[d.status] = (counts[d.status] ?? 0) + 1;
      return {
        thread_id: opts.thread,
        current_dispatch_epoch: epoch,
        limit,
        offset: opts.offset,
        counts_in_page: counts,
        items: items.map(runDispatchToWire),
      };
    }
    const values = await Promise.all(RUN_DISPATCH_STATUSES.map((s) => store.countDispatchesByStatus(s)));
    const counts = Object.fromEntries(RUN_DISPATCH_STATUSES.map((s, i) => [s, values[i] ?? 0]));
    const queuedThreads = await store.queuedThreadIds();
    return {
      namespace: opts.namespace,
      counts,
      queued_threads: queuedThreads.length,
      queued_thread_ids: queuedThreads.slice(0, INSPECT_MAX_LIMIT),
    };
  });
}

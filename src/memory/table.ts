/**
 * The memory store's state: every record by id plus the indexes that keep each operation off a global scan
 * (the same indexes the Redis store keeps):
 * - per thread: epoch, record count, one ordered set per status (list_dispatches), the Queued dispatches
 *   split into `ready` (queue order) and `waiting` (by available_at; promoted by claim), the dedupe keys of
 *   non-terminal holders and any stale-epoch Queued dispatch;
 * - global: per-status counters (O(1) count), the terminal index (list_terminal / purge), the lease index
 *   (reclaim), the threads that have Queued dispatches, and the threads left without records (purge GC).
 *
 * Records are immutable values here: a transition replaces the record, `leave`-ing every index with the old
 * one and `enter`-ing them with the new one, so an index never holds a key that changed under it.
 */
import type { RunDispatch, RunDispatchStatus } from '../contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import {
  compareAvailability,
  compareIds,
  compareLease,
  compareQueueOrder,
  compareTerminal,
} from './records.js';
import { SortedList } from './sorted-list.js';

export class ThreadState {
  epoch = 0;
  /** The claim token of the latest cancel request on the thread (`requestRunCancel`), or null. */
  cancelToken: string | null = null;
  /** Records of this thread currently stored (any status). */
  records = 0;
  readonly byStatus = new Map<RunDispatchStatus, SortedList<RunDispatch>>();
  /** Queued dispatches already seen available by a claim, in queue order. */
  readonly ready = new SortedList<RunDispatch>(compareQueueOrder);
  /** Queued dispatches not yet promoted, by available_at. */
  readonly waiting = new SortedList<RunDispatch>(compareAvailability);
  /** dedupe_key → dispatch_id, for non-terminal holders only. */
  readonly dedupe = new Map<string, string>();
  /** Queued dispatches whose epoch is below the thread's (only planted records; interrupt leaves none). */
  readonly staleQueued = new Set<string>();

  constructor(readonly threadId: string) {}

  list(status: RunDispatchStatus): SortedList<RunDispatch> | undefined {
    return this.byStatus.get(status);
  }

  size(status: RunDispatchStatus): number {
    return this.byStatus.get(status)?.size ?? 0;
  }
}

export class DispatchTable {
  readonly #records = new Map<string, RunDispatch>();
  readonly #threads = new Map<string, ThreadState>();
  readonly #counts = new Map<RunDispatchStatus, number>(RUN_DISPATCH_STATUSES.map((s) => [s, 0]));
  readonly #terminal = new SortedList<RunDispatch>(compareTerminal);
  readonly #leases = new SortedList<RunDispatch>(compareLease);
  readonly #queuedThreads = new Set<string>();
  /** Threads whose record count is (or was, when added) zero: purge drops their epoch state. */
  readonly #drained = new Set<string>();

  get size(): number {
    return this.#records.size;
  }

  get(dispatchId: string): RunDispatch | undefined {
    return this.#records.get(dispatchId);
  }

  thread(threadId: string): ThreadState | undefined {
    return this.#threads.get(threadId);
  }

  ensureThread(threadId: string): ThreadState {
    let t = this.#threads.get(threadId);
    if (t === undefined) {
      t = new ThreadState(threadId);
      this.#threads.set(threadId, t);
      this.#drained.add(threadId);
    }
    return t;
  }

  count(status: RunDispatchStatus): number {
    return this.#counts.get(status) ?? 0;
  }

  get terminal(): SortedList<RunDispatch> {
    return this.#terminal;
  }

  get leases(): SortedList<RunDispatch> {
    return this.#leases;
  }

  /** Sizes of the table and its global indexes (diagnostics). */
  stats(): { records: number; threads: number; queuedThreads: number; leases: number; terminal: number } {
    return {
      records: this.#records.size,
      threads: this.#threads.size,
      queuedThreads: this.#queuedThreads.size,
      leases: this.#leases.size,
      terminal: this.#terminal.size,
    };
  }

  queuedThreadIds(): string[] {
    return [...this.#queuedThreads].sort(compareIds);
  }

  /** Store a new record (its thread state must exist). */
  insert(d: RunDispatch): void {
    const t = this.ensureThread(d.thread_id);
    this.#records.set(d.dispatch_id, d);
    t.records += 1;
    this.#enter(t, d);
  }

  /** Replace `prev` by `next` (same id and thread). */
  replace(prev: RunDispatch, next: RunDispatch): void {
    const t = this.ensureThread(prev.thread_id);
    this.#leave(t, prev);
    this.#records.set(next.dispatch_id, next);
    this.#enter(t, next);
  }

  /** Delete a record from the table and every index. */
  remove(d: RunDispatch): void {
    const t = this.#threads.get(d.thread_id);
    this.#records.delete(d.dispatch_id);
    if (t === undefined) return;
    this.#leave(t, d);
    t.records -= 1;
    if (t.records <= 0) this.#drained.add(t.threadId);
  }

  /** Note that a thread may have no records (interrupt of an empty thread), for the next purge. */
  markMaybeDrained(threadId: string): void {
    const t = this.#threads.get(threadId);
    if (t !== undefined && t.records <= 0) this.#drained.add(threadId);
  }

  /** Purge GC: forget the epoch state of every thread left without records (a later enqueue starts at 0). */
  dropDrainedThreads(): void {
    for (const threadId of this.#drained) {
      const t = this.#threads.get(threadId);
      if (t !== undefined && t.records <= 0) this.#threads.delete(threadId);
    }
    this.#drained.clear();
  }

  /** Promote waiting Queued dispatches of `t` with available_at <= now into the ready set. */
  promote(t: ThreadState, now: number): void {
    for (const d of t.waiting.takeWhile((w) => w.available_at <= now)) {
      t.waiting.delete(d);
      t.ready.add(d);
    }
  }

  /** Move a ready dispatch back to waiting (a claim with an earlier `now` than the one that promoted it). */
  demote(t: ThreadState, d: RunDispatch): void {
    if (t.ready.delete(d)) t.waiting.add(d);
  }

  #enter(t: ThreadState, d: RunDispatch): void {
    let list = t.byStatus.get(d.status);
    if (list === undefined) {
      list = new SortedList<RunDispatch>(compareQueueOrder);
      t.byStatus.set(d.status, list);
    }
    list.add(d);
    this.#counts.set(d.status, this.count(d.status) + 1);
    switch (d.status) {
      case 'Queued':
        t.waiting.add(d);
        this.#queuedThreads.add(t.threadId);
        if (d.dispatch_epoch < t.epoch) t.staleQueued.add(d.dispatch_id);
        if (d.dedupe_key !== null) t.dedupe.set(d.dedupe_key, d.dispatch_id);
        break;
      case 'Claimed':
        this.#leases.add(d);
        if (d.dedupe_key !== null) t.dedupe.set(d.dedupe_key, d.dispatch_id);
        break;
      default:
        this.#terminal.add(d);
        if (d.dedupe_key !== null && t.dedupe.get(d.dedupe_key) === d.dispatch_id)
          t.dedupe.delete(d.dedupe_key);
    }
  }

  #leave(t: ThreadState, d: RunDispatch): void {
    const list = t.byStatus.get(d.status);
    if (list !== undefined) {
      list.delete(d);
      if (list.size === 0) t.byStatus.delete(d.status);
    }
    this.#counts.set(d.status, this.count(d.status) - 1);
    if (d.status === 'Queued') {
      if (!t.ready.delete(d)) t.waiting.delete(d);
      t.staleQueued.delete(d.dispatch_id);
      if (t.size('Queued') === 0) this.#queuedThreads.delete(t.threadId);
    } else if (d.status === 'Claimed') {
      this.#leases.delete(d);
    } else {
      this.#terminal.delete(d);
    }
  }
}

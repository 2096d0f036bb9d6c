/**
 * When each Queued dispatch is owed a republished signal (so a lost signal never strands work): at
 * `max(available_at, last signal + republishAfterMs)`. The store schedules a dispatch when it enters Queued
 * (and signals it then), unschedules it when it leaves Queued, and the sweeper takes what is due. Only
 * Queued dispatches are ever scheduled, so the schedule is bounded by the Queued count.
 */
import type { SignalRef } from '../signals/transport.js';
import { compareIds } from './records.js';
import { SortedList } from './sorted-list.js';

interface Due {
  readonly at: number;
  readonly thread_id: string;
  readonly dispatch_id: string;
}

function compareDue(a: Due, b: Due): number {
  return a.at - b.at || compareIds(a.dispatch_id, b.dispatch_id);
}

export class RepublishSchedule {
  readonly #due = new SortedList<Due>(compareDue);
  readonly #byId = new Map<string, Due>();

  get size(): number {
    return this.#byId.size;
  }

  set(ref: SignalRef, at: number): void {
    this.unset(ref.dispatch_id);
    const due: Due = { at, thread_id: ref.thread_id, dispatch_id: ref.dispatch_id };
    this.#due.add(due);
    this.#byId.set(ref.dispatch_id, due);
  }

  unset(dispatchId: string): void {
    const due = this.#byId.get(dispatchId);
    if (due === undefined) return;
    this.#due.delete(due);
    this.#byId.delete(dispatchId);
  }

  /** When the earliest scheduled dispatch is due; null when nothing is scheduled. */
  earliest(): number | null {
    return this.#due.first()?.at ?? null;
  }

  /** Up to `limit` dispatches due at `now`, rescheduled at `next`. */
  takeDue(now: number, limit: number, next: number): SignalRef[] {
    const taken = this.#due.takeWhile((d) => d.at <= now, limit);
    return taken.map((d) => {
      const ref = { thread_id: d.thread_id, dispatch_id: d.dispatch_id };
      this.set(ref, next);
      return ref;
    });
  }

  clear(): void {
    this.#due.clear();
    this.#byId.clear();
  }
}

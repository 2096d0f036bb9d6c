/**
 * The Mailbox's bound on runs executing at once (`config.concurrency`), across all threads. A claim is only
 * made while holding a slot; the run keeps it until it is over (a chained claim of the same thread inherits
 * it). A thread refused for want of a slot is remembered, oldest first, and handed out when a slot frees, so
 * work waits instead of being dropped. The signal loop waits for a free slot before it pulls, leaving signals
 * to nodes with room.
 */

import { UniqueFifo } from '../util/unique-fifo.js';

/** Threads remembered while saturated; beyond this the signals, the sweeper and the idle poll bring them back. */
const MAX_DEFERRED = 10_000;

export class RunSlots {
  readonly #limit: number;
  #used = 0;
  /** The thread refused longest ago comes back first. */
  readonly #deferred = new UniqueFifo<string>();
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  get limit(): number {
    return this.#limit;
  }

  get used(): number {
    return this.#used;
  }

  get free(): number {
    return Math.max(0, this.#limit - this.#used);
  }

  /** Whether threads wait for a slot (the next free slot should go to one of them). */
  get contended(): boolean {
    return this.#deferred.size > 0;
  }

  tryTake(): boolean {
    if (this.#used >= this.#limit) return false;
    this.#used++;
    return true;
  }

  /**
   * Give a slot back. Returns the thread that waited longest for one (the caller tries it now), or null;
   * whoever waits in `whenFree` is woken either way.
   */
  give(): string | null {
    if (this.#used > 0) this.#used--;
    this.#wake();
    return this.#deferred.shift() ?? null;
  }

  /** Remember a thread refused for want of a slot. */
  defer(threadId: string): void {
    // A thread already waiting keeps its place (UniqueFifo ignores it).
    if (this.#deferred.size < MAX_DEFERRED) this.#deferred.add(threadId);
  }

  /** Resolves at the next `give()` (or `wakeAll()`); resolves at once when a slot is free. */
  whenFree(): Promise<void> {
    if (this.free > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wake every waiter (stopping), and forget deferred threads. */
  wakeAll(): void {
    this.#deferred.clear();
    this.#wake();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

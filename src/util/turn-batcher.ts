/**
 * Calls made in one turn of the event loop (the synchronous code and the promise reactions that follow it)
 * handed over together: `add` queues an item and answers its own result; once the turn's microtasks have run
 * (`process.nextTick` then fires, before any I/O), the queued items go to `send` in chunks of at most
 * `maxBatch`, in the order they were added. A lone item costs one `nextTick` more than a direct call, and
 * never waits for I/O or a timer, so nothing is delayed past the turn that made it.
 *
 * With `schedule: 'iteration'` the items wait for `setImmediate` instead: the calls of one whole iteration of
 * the event loop (every timer and I/O callback of it) go together, at the cost of at most that iteration.
 * Calls that finish in separate callbacks (runs ending on their own timers or sockets) only meet that way.
 *
 * `send` answers one settlement per item, in order: `{ ok: true, value }` or `{ ok: false, error }`. If it
 * throws (or answers the wrong number of settlements), every item of that chunk fails with that error.
 */
export type Settlement<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Pending<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

export class TurnBatcher<T, R> {
  readonly #send: (items: readonly T[]) => Promise<readonly Settlement<R>[]>;
  readonly #maxBatch: number;
  readonly #schedule: (flush: () => void) => void;
  #queue: Pending<T, R>[] = [];

  constructor(
    send: (items: readonly T[]) => Promise<readonly Settlement<R>[]>,
    maxBatch: number,
    schedule: 'turn' | 'iteration' = 'turn',
  ) {
    if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new RangeError('maxBatch must be at least 1');
    this.#send = send;
    this.#maxBatch = maxBatch;
    this.#schedule = schedule === 'turn' ? (f) => process.nextTick(f) : (f) => setImmediate(f);
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (this.#queue.length === 1) this.#schedule(() => this.#flush());
    });
  }

  #flush(): void {
    const queued = this.#queue;
    this.#queue = [];
    for (let i = 0; i < queued.length; i += this.#maxBatch) {
      void this.#sendChunk(queued.slice(i, i + this.#maxBatch));
    }
  }

  async #sendChunk(chunk: readonly Pending<T, R>[]): Promise<void> {
    let settled: readonly Settlement<R>[];
    try {
      settled = await this.#send(chunk.map((p) => p.item));
      if (settled.length !== chunk.length) {
        throw new Error(`batch answered ${settled.length} results for ${chunk.length} calls`);
      }
    } catch (err) {
      for (const p of chunk) p.reject(err);
      return;
    }
    chunk.forEach((p, i) => {
      const s = settled[i] as Settlement<R>;
      if (s.ok) p.resolve(s.value);
      else p.reject(s.error);
    });
  }
}

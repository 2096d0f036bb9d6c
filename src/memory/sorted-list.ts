/**
 * An ordered collection with O(log n + chunk) insert and delete and cheap in-order iteration from an offset:
 * a list of sorted chunks (each at most `2 × load` long) plus the last element of every chunk for the
 * binary search. The memory store keeps every index in one of these, so no operation scans all records.
 *
 * `compare` must be a total order in which 0 means "the same element" (the store's comparators end on the
 * dispatch id). Elements must not change their sort key while inside the list: remove, change, re-add.
 */
export type Compare<T> = (a: T, b: T) => number;

const DEFAULT_LOAD = 256;

export class SortedList<T> {
  readonly #compare: Compare<T>;
  readonly #load: number;
  #chunks: T[][] = [];
  #maxes: T[] = [];
  #size = 0;

  constructor(compare: Compare<T>, load = DEFAULT_LOAD) {
    this.#compare = compare;
    this.#load = load;
  }

  get size(): number {
    return this.#size;
  }

  first(): T | undefined {
    return this.#chunks[0]?.[0];
  }

  /** Insert `item`; an element comparing equal is replaced (the list holds each key once). */
  add(item: T): void {
    if (this.#chunks.length === 0) {
      this.#chunks.push([item]);
      this.#maxes.push(item);
      this.#size = 1;
      return;
    }
    const lastChunk = this.#chunks.length - 1;
    if (this.#compare(this.#maxes[lastChunk] as T, item) < 0) {
      // Appending (terminal records, a thread's next dispatch): no search.
      const chunk = this.#chunks[lastChunk] as T[];
      chunk.push(item);
      this.#size += 1;
      this.#maxes[lastChunk] = item;
      if (chunk.length > 2 * this.#load) {
        const tail = chunk.splice(this.#load);
        this.#chunks.push(tail);
        this.#maxes.splice(lastChunk, 1, chunk[chunk.length - 1] as T, tail[tail.length - 1] as T);
      }
      return;
    }
    let c = this.#chunkFor(item);
    if (c === this.#chunks.length) c -= 1;
    const chunk = this.#chunks[c] as T[];
    const pos = this.#bisect(chunk, item);
    if (pos < chunk.length && this.#compare(chunk[pos] as T, item) === 0) {
      chunk[pos] = item;
      if (pos === chunk.length - 1) this.#maxes[c] = item;
      return;
    }
    chunk.splice(pos, 0, item);
    this.#size += 1;
    this.#maxes[c] = chunk[chunk.length - 1] as T;
    if (chunk.length > 2 * this.#load) {
      const tail = chunk.splice(this.#load);
      this.#chunks.splice(c + 1, 0, tail);
      this.#maxes.splice(c, 1, chunk[chunk.length - 1] as T, tail[tail.length - 1] as T);
    }
  }

  /** Remove the element comparing equal to `item`; false when there is none. */
  delete(item: T): boolean {
    const head = this.#chunks[0];
    if (head !== undefined && head.length > 1 && this.#compare(head[0] as T, item) === 0) {
      // Taking the head (the next claim, the oldest lease or terminal record): no search.
      head.shift();
      this.#size -= 1;
      return true;
    }
    const c = this.#chunkFor(item);
    const chunk = this.#chunks[c];
    if (chunk === undefined) return false;
    const pos = this.#bisect(chunk, item);
    if (pos >= chunk.length || this.#compare(chunk[pos] as T, item) !== 0) return false;
    chunk.splice(pos, 1);
    this.#size -= 1;
    if (chunk.length === 0) {
      this.#chunks.splice(c, 1);
      this.#maxes.splice(c, 1);
    } else {
      this.#maxes[c] = chunk[chunk.length - 1] as T;
    }
    return true;
  }

  has(item: T): boolean {
    const chunk = this.#chunks[this.#chunkFor(item)];
    if (chunk === undefined) return false;
    const pos = this.#bisect(chunk, item);
    return pos < chunk.length && this.#compare(chunk[pos] as T, item) === 0;
  }

  /** Elements in order, skipping the first `offset`. Do not mutate the list while iterating. */
  *values(offset = 0): Generator<T, void, undefined> {
    let skip = offset;
    for (const chunk of this.#chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      for (let i = skip; i < chunk.length; i++) yield chunk[i] as T;
      skip = 0;
    }
  }

  /** Up to `limit` elements in order from `offset`, as an array (safe to mutate the list afterwards). */
  slice(offset: number, limit: number): T[] {
    const out: T[] = [];
    if (limit <= 0) return out;
    for (const item of this.values(offset)) {
      out.push(item);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Leading elements while `keep(element)` holds, at most `limit` of them. */
  takeWhile(keep: (item: T) => boolean, limit = Number.POSITIVE_INFINITY): T[] {
    const out: T[] = [];
    for (const item of this.values()) {
      if (out.length >= limit || !keep(item)) break;
      out.push(item);
    }
    return out;
  }

  clear(): void {
    this.#chunks = [];
    this.#maxes = [];
    this.#size = 0;
  }

  /** Index of the first chunk whose last element is >= item (chunks.length when none). */
  #chunkFor(item: T): number {
    let lo = 0;
    let hi = this.#maxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(this.#maxes[mid] as T, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First position in `chunk` whose element is >= item. */
  #bisect(chunk: readonly T[], item: T): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(chunk[mid] as T, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * Partitions of a namespace: which partition a thread (and so each of its dispatches) belongs to, and how a
 * dispatch id finds its partition.
 *
 * A thread belongs to partition `fnv1a32(utf8(thread_id)) mod N`: the 32-bit FNV-1a hash (offset basis
 * 2166136261, prime 16777619) of the thread id's UTF-8 bytes, as an unsigned integer. The mapping is part of
 * the data layout: changing it (or N) for a namespace that holds data strands every existing thread in the
 * wrong partition, so it never changes, and N is fixed for the life of a namespace.
 *
 * Dispatch ids are chosen by the caller and carry no partition. Methods addressed by dispatch id find it in
 * this order:
 *   1. a bounded in-process cache (dispatch id → partition), filled by every record and signal this process
 *      sees: a Mailbox acks, renews and completes the dispatches it claimed without any lookup;
 *   2. the dispatch directory: a hash per partition (`dispatchDirectory`) that maps the dispatch ids whose
 *      directory shard `fnv1a32(utf8(dispatch_id)) mod N` is that partition to the partition of their
 *      record. `enqueue` writes the entry (HSETNX) before the record, so it also keeps dispatch ids unique
 *      across partitions; purges remove it;
 *   3. when the directory has no entry: one EXISTS per partition, in parallel (a directory entry can be
 *      missing only after a race between a purge or a failed enqueue and a re-enqueue of the same id).
 * A cached answer that finds no record is checked against the directory once (a purged id may come back on
 * another thread).
 */
import { BoundedMap } from '../util/bounded-map.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text` (lone surrogates count as U+FFFD, like TextEncoder). */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET;
  const byte = (b: number): void => {
    hash = Math.imul(hash ^ b, FNV_PRIME);
  };
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      byte(c);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd;
    }
    if (c < 0x800) {
      byte(0xc0 | (c >> 6));
    } else if (c < 0x10000) {
      byte(0xe0 | (c >> 12));
      byte(0x80 | ((c >> 6) & 0x3f));
    } else {
      byte(0xf0 | (c >> 18));
      byte(0x80 | ((c >> 12) & 0x3f));
      byte(0x80 | ((c >> 6) & 0x3f));
    }
    byte(0x80 | (c & 0x3f));
  }
  return hash >>> 0;
}

/** The partition of a thread (and of every dispatch of the thread) among `count`. */
export function partitionOf(threadId: string, count: number): number {
  return count === 1 ? 0 : fnv1a32(threadId) % count;
}

/** The partition whose `dispatchDirectory` holds the entry of `dispatchId`. */
export function directoryShardOf(dispatchId: string, count: number): number {
  return count === 1 ? 0 : fnv1a32(dispatchId) % count;
}

/** Entries the in-process route cache keeps (oldest dropped first; up to 1/16 more between evictions). */
export const ROUTE_CACHE_SIZE = 100_000;

/** Dispatch id → partition, bounded, oldest entries dropped first. A hint: the directory decides. */
export class RouteCache {
  readonly #map: BoundedMap<string, number>;

  constructor(capacity = ROUTE_CACHE_SIZE) {
    this.#map = new BoundedMap(capacity);
  }

  get(dispatchId: string): number | undefined {
    return this.#map.get(dispatchId);
  }

  set(dispatchId: string, partition: number): void {
    if (this.#map.get(dispatchId) === partition) return;
    this.#map.set(dispatchId, partition);
  }

  delete(dispatchId: string): void {
    this.#map.delete(dispatchId);
  }

  get size(): number {
    return this.#map.size;
  }
}

/**
 * Byte (UTF-8) order of two strings, which is how Redis orders equal-score members of a sorted set. Merges
 * across partitions use it so N partitions list in exactly the order one partition would.
 */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  // UTF-16 order equals UTF-8 byte order except between astral characters and U+E000..U+FFFF.
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\ud7ff]*$/.test(a) && /^[\u0000-\ud7ff]*$/.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** One sorted-set entry of a partition's index. */
export interface IndexEntry {
  partition: number;
  member: string;
  score: number;
}

/** Index order: score, then member bytes (Redis's own order), then partition (never equal in practice). */
export function compareEntries(a: IndexEntry, b: IndexEntry): number {
  return a.score - b.score || compareBytes(a.member, b.member) || a.partition - b.partition;
}

/**
 * Merge per-partition index heads (each already in index order) and return how many of the first `take`
 * entries each partition holds after skipping `skip`: `[skipped, taken]` per partition, plus the merged
 * window in order.
 */
export function mergeQuotas(
  heads: readonly (readonly IndexEntry[])[],
  skip: number,
  take: number,
): { skipped: number[]; taken: number[]; window: IndexEntry[] } {
  const all = heads.flat().sort(compareEntries);
  const skipped = heads.map(() => 0);
  const taken = heads.map(() => 0);
  const window: IndexEntry[] = [];
  for (let i = 0; i < all.length && i < skip + take; i++) {
    const e = all[i] as IndexEntry;
    if (i < skip) skipped[e.partition] = (skipped[e.partition] ?? 0) + 1;
    else {
      taken[e.partition] = (taken[e.partition] ?? 0) + 1;
      window.push(e);
    }
  }
  return { skipped, taken, window };
}

/** Append `values` to the list under `key` (creating it). */
export function appendTo<K, V>(groups: Map<K, V[]>, key: K, ...values: V[]): void {
  const list = groups.get(key);
  if (list) list.push(...values);
  else groups.set(key, values);
}

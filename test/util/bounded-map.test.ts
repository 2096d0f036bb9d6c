import { describe, expect, it } from 'vitest';
import { RecentSubmissions } from '../../src/mailbox/recent-submissions.js';
import { RouteCache } from '../../src/redis/partitions.js';
import { BoundedMap } from '../../src/util/bounded-map.js';

describe('BoundedMap', () => {
  it('never holds more than maxSize entries and forgets the oldest insertions first', () => {
    const map = new BoundedMap<number, string>(160);
    expect(map.maxSize).toBe(170);
    let largest = 0;
    for (let i = 0; i < 10_000; i++) {
      map.set(i, `v${i}`);
      largest = Math.max(largest, map.size);
    }
    expect(largest).toBe(170);
    // Whatever it holds is the newest `size` keys, each with its own value.
    const oldestKept = 10_000 - map.size;
    expect(map.size).toBeGreaterThanOrEqual(160);
    expect(map.has(oldestKept - 1)).toBe(false);
    for (let i = oldestKept; i < 10_000; i++) expect(map.get(i)).toBe(`v${i}`);
  });

  it('evicts back down to capacity in one pass', () => {
    const map = new BoundedMap<string, number>(32);
    for (let i = 0; i < 34; i++) map.set(`k${i}`, i);
    expect(map.size).toBe(34);
    map.set('k34', 34);
    expect(map.size).toBe(32);
    expect(map.has('k2')).toBe(false);
    expect(map.get('k3')).toBe(3);
  });

  it('moves a key set again to the newest place', () => {
    const map = new BoundedMap<string, number>(16);
    for (let i = 0; i < 17; i++) map.set(`k${i}`, i);
    map.set('k0', 100); // refreshed: now the newest
    map.set('k17', 17); // past maxSize (17): evicts the 2 oldest, k1 and k2
    expect(map.get('k0')).toBe(100);
    expect(map.has('k1')).toBe(false);
    expect(map.has('k2')).toBe(false);
    expect(map.get('k3')).toBe(3);
  });

  it('deletes, and counts a deletion in its size', () => {
    const map = new BoundedMap<string, number>(4);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    expect(map.size).toBe(1);
    expect(map.get('a')).toBeUndefined();
  });

  it('iterates oldest first, allows deleting while iterating, and clears', () => {
    const map = new BoundedMap<number, string>(8);
    for (const k of [3, 1, 2]) map.set(k, `v${k}`);
    map.set(3, 'again'); // moved to newest
    expect([...map.values()]).toEqual(['v1', 'v2', 'again']);
    for (const [k] of map) if (k < 3) map.delete(k);
    expect([...map]).toEqual([[3, 'again']]);
    map.clear();
    expect(map.size).toBe(0);
    expect([...map]).toEqual([]);
  });

  it('keeps a capacity of 1 bounded', () => {
    const map = new BoundedMap<number, number>(1);
    expect(map.maxSize).toBe(2);
    for (let i = 0; i < 100; i++) map.set(i, i);
    expect(map.size).toBeLessThanOrEqual(2);
    expect(map.get(99)).toBe(99);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses capacity %s', (capacity) => {
    expect(() => new BoundedMap(capacity)).toThrow(RangeError);
  });
});

describe('the bounded caches built on it', () => {
  it('RecentSubmissions remembers the newest runs and forgets the oldest', () => {
    const recent = new RecentSubmissions(100);
    for (let i = 0; i < 1_000; i++) recent.remember(`run-${i}`, { dispatchId: `d-${i}`, threadId: 't' });
    expect(recent.get('run-0')).toBeUndefined();
    expect(recent.get('run-999')).toEqual({ dispatchId: 'd-999', threadId: 't' });
    expect(recent.get('run-900')).toEqual({ dispatchId: 'd-900', threadId: 't' });
  });

  it('RouteCache stays bounded and keeps the newest routes', () => {
    const routes = new RouteCache(64);
    for (let i = 0; i < 1_000; i++) routes.set(`d-${i}`, i % 8);
    expect(routes.size).toBeLessThanOrEqual(68);
    expect(routes.get('d-0')).toBeUndefined();
    expect(routes.get('d-999')).toBe(999 % 8);
    routes.delete('d-999');
    expect(routes.get('d-999')).toBeUndefined();
  });
});

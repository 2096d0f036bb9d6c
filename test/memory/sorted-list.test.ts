/** SortedList against a plain sorted array, over random operation sequences (small chunks force splits). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SortedList } from '../../src/memory/sorted-list.js';

const cmp = (a: number, b: number): number => a - b;

describe('SortedList', () => {
  it('matches a sorted-array model under random add / delete / slice / takeWhile', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), v: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant('delete' as const), v: fc.integer({ min: 0, max: 300 }) }),
      fc.record({
        kind: fc.constant('slice' as const),
        offset: fc.integer({ min: 0, max: 320 }),
        limit: fc.integer({ min: 0, max: 40 }),
      }),
      fc.record({ kind: fc.constant('takeWhile' as const), v: fc.integer({ min: 0, max: 300 }) }),
      // The fast paths: appends past the current maximum, deletes of the current head.
      fc.record({ kind: fc.constant('append' as const), v: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ kind: fc.constant('deleteHead' as const), v: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), fc.integer({ min: 1, max: 8 }), (ops, load) => {
        const list = new SortedList<number>(cmp, load);
        let model: number[] = [];
        for (const o of ops) {
          if (o.kind === 'append') {
            const v = (model[model.length - 1] ?? 0) + o.v;
            list.add(v);
            if (!model.includes(v)) model = [...model, v].sort(cmp);
          } else if (o.kind === 'deleteHead') {
            const head = model[0];
            if (head !== undefined) {
              expect(list.delete(head)).toBe(true);
              model = model.slice(1);
            }
          } else if (o.kind === 'add') {
            list.add(o.v);
            if (!model.includes(o.v)) model = [...model, o.v].sort(cmp);
          } else if (o.kind === 'delete') {
            expect(list.delete(o.v)).toBe(model.includes(o.v));
            model = model.filter((x) => x !== o.v);
          } else if (o.kind === 'slice') {
            expect(list.slice(o.offset, o.limit)).toEqual(model.slice(o.offset, o.offset + o.limit));
          } else {
            const n = model.findIndex((x) => x > o.v);
            expect(list.takeWhile((x) => x <= o.v)).toEqual(n < 0 ? model : model.slice(0, n));
          }
          expect(list.size).toBe(model.length);
          expect(list.first()).toBe(model[0]);
        }
        expect([...list.values()]).toEqual(model);
        for (const v of model) expect(list.has(v)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('replaces an element that compares equal instead of duplicating it', () => {
    const list = new SortedList<{ k: number; tag: string }>((a, b) => a.k - b.k, 2);
    for (let k = 0; k < 10; k++) list.add({ k, tag: 'old' });
    list.add({ k: 9, tag: 'new' });
    list.add({ k: 4, tag: 'new' });
    expect(list.size).toBe(10);
    expect([...list.values()].filter((e) => e.tag === 'new').map((e) => e.k)).toEqual([4, 9]);
  });
});

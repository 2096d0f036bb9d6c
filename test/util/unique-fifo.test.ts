import { describe, expect, it } from 'vitest';
import { RunSlots } from '../../src/mailbox/run-slots.js';
import { UniqueFifo } from '../../src/util/unique-fifo.js';

describe('UniqueFifo', () => {
  it('hands values out oldest first and ignores a value already queued', () => {
    const q = new UniqueFifo<string>();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('c');
    expect(q.size).toBe(3);
    expect(q.has('b')).toBe(true);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual(['a', 'b', 'c', undefined]);
    expect(q.size).toBe(0);
  });

  it('queues a value again once it was taken, at the back', () => {
    const q = new UniqueFifo<string>();
    q.add('a');
    q.add('b');
    expect(q.shift()).toBe('a');
    q.add('a');
    expect([q.shift(), q.shift()]).toEqual(['b', 'a']);
  });

  it('keeps the order through long churn (the front is dropped as it goes)', () => {
    const q = new UniqueFifo<number>();
    const model: number[] = [];
    for (let i = 0; i < 500; i++) {
      q.add(i);
      model.push(i);
    }
    for (let i = 500; i < 20_000; i++) {
      expect(q.shift()).toBe(model.shift());
      const v = i % 700; // some values are still queued (ignored), others come back
      if (!model.includes(v)) model.push(v);
      q.add(v);
      expect(q.size).toBe(model.length);
    }
    while (model.length > 0) expect(q.shift()).toBe(model.shift());
    expect(q.shift()).toBeUndefined();
  });

  it('clear forgets everything', () => {
    const q = new UniqueFifo<string>();
    q.add('a');
    q.clear();
    expect(q.size).toBe(0);
    expect(q.has('a')).toBe(false);
    expect(q.shift()).toBeUndefined();
    q.add('a');
    expect(q.shift()).toBe('a');
  });
});

describe('RunSlots', () => {
  it('gives a freed slot to the thread refused longest ago, each thread once', () => {
    const slots = new RunSlots(1);
    expect(slots.tryTake()).toBe(true);
    expect(slots.tryTake()).toBe(false);
    slots.defer('t1');
    slots.defer('t2');
    slots.defer('t1');
    expect(slots.contended).toBe(true);
    expect(slots.give()).toBe('t1');
    expect(slots.give()).toBe('t2');
    expect(slots.give()).toBeNull();
    expect(slots.contended).toBe(false);
  });

  it('wakeAll forgets the deferred threads', () => {
    const slots = new RunSlots(1);
    slots.defer('t1');
    slots.wakeAll();
    expect(slots.contended).toBe(false);
    expect(slots.give()).toBeNull();
  });
});

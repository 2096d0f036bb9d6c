import { describe, expect, it } from 'vitest';
import { TurnBatcher, type Settlement } from '../../src/util/turn-batcher.js';

/** A batcher whose `send` records each chunk and answers item * 10, or fails items named 'bad'. */
function recording(maxBatch: number): { batcher: TurnBatcher<string, string>; chunks: string[][] } {
  const chunks: string[][] = [];
  const batcher = new TurnBatcher<string, string>(async (items) => {
    chunks.push([...items]);
    return items.map((item): Settlement<string> =>
      item === 'bad' ? { ok: false, error: new Error(`failed ${item}`) } : { ok: true, value: `${item}!` },
    );
  }, maxBatch);
  return { batcher, chunks };
}

describe('TurnBatcher', () => {
  it('hands the calls of one turn over together, in order, each answered its own result', async () => {
    const { batcher, chunks } = recording(10);
    const results = await Promise.allSettled(['a', 'bad', 'c'].map((x) => batcher.add(x)));
    expect(chunks).toEqual([['a', 'bad', 'c']]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'a!' });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: new Error('failed bad') });
    expect(results[2]).toEqual({ status: 'fulfilled', value: 'c!' });
  });

  it('splits a turn into chunks of at most maxBatch', async () => {
    const { batcher, chunks } = recording(3);
    const items = Array.from({ length: 8 }, (_, i) => `i${i}`);
    expect(await Promise.all(items.map((x) => batcher.add(x)))).toEqual(items.map((x) => `${x}!`));
    expect(chunks).toEqual([
      ['i0', 'i1', 'i2'],
      ['i3', 'i4', 'i5'],
      ['i6', 'i7'],
    ]);
  });

  it('includes calls made by promise reactions of the same turn, not those of a later one', async () => {
    const { batcher, chunks } = recording(10);
    const first = batcher.add('a');
    const second = Promise.resolve().then(() => batcher.add('b'));
    await Promise.all([first, second]);
    await batcher.add('c');
    expect(chunks).toEqual([['a', 'b'], ['c']]);
  });

  it('fails every call of a chunk when send throws or answers the wrong number of results', async () => {
    const throwing = new TurnBatcher<string, string>(async () => {
      throw new Error('down');
    }, 5);
    const thrown = await Promise.allSettled([throwing.add('a'), throwing.add('b')]);
    expect(thrown.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((thrown[0] as PromiseRejectedResult).reason).toEqual(new Error('down'));

    const short = new TurnBatcher<string, string>(async () => [{ ok: true, value: 'x' }], 5);
    const answered = await Promise.allSettled([short.add('a'), short.add('b')]);
    expect(answered.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(String((answered[1] as PromiseRejectedResult).reason)).toContain('1 results for 2 calls');
  });

  it("with schedule 'iteration', also gathers calls of separate callbacks of one iteration", async () => {
    const chunks: string[][] = [];
    const make = (schedule: 'turn' | 'iteration'): TurnBatcher<string, string> =>
      new TurnBatcher<string, string>(
        async (items) => {
          chunks.push([...items]);
          return items.map((item) => ({ ok: true, value: item }));
        },
        10,
        schedule,
      );
    // Three callbacks of one check phase (immediates queued together run in the same iteration; timers due
    // at the same millisecond need not), each followed by its own turn of microtasks and ticks.
    const fromCallbacks = (batcher: TurnBatcher<string, string>): Promise<string[]> =>
      Promise.all(
        ['x', 'y', 'z'].map(
          (item) =>
            new Promise<string>((resolve, reject) => {
              setImmediate(() => batcher.add(item).then(resolve, reject));
            }),
        ),
      );
    expect(await fromCallbacks(make('iteration'))).toEqual(['x', 'y', 'z']);
    expect(chunks).toEqual([['x', 'y', 'z']]);
    chunks.length = 0;
    expect(await fromCallbacks(make('turn'))).toEqual(['x', 'y', 'z']);
    expect(chunks).toEqual([['x'], ['y'], ['z']]);
  });

  it('refuses a batch size below one', () => {
    expect(() => new TurnBatcher<string, string>(async () => [], 0)).toThrow(RangeError);
  });
});

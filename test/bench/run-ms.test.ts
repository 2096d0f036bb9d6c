import { describe, expect, it } from 'vitest';
import { EXP_CAP_FACTOR, formatRunMs, meanRunMs, parseRunMs, sampleRunMs } from '../../src/bench/run-ms.js';
import { StorageError } from '../../src/contract/errors.js';

/** A deterministic uniform source (LCG), so sample statistics are reproducible. */
function lcg(seed = 42): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe('--run-ms parser', () => {
  it('parses every distribution', () => {
    expect(parseRunMs('5')).toEqual({ kind: 'fixed', ms: 5 });
    expect(parseRunMs('fixed:0')).toEqual({ kind: 'fixed', ms: 0 });
    expect(parseRunMs('fixed:2.5')).toEqual({ kind: 'fixed', ms: 2.5 });
    expect(parseRunMs(' uniform:1-10 ')).toEqual({ kind: 'uniform', min: 1, max: 10 });
    expect(parseRunMs('exp:5')).toEqual({ kind: 'exp', mean: 5 });
    expect(parseRunMs('normal:20,5')).toEqual({ kind: 'normal', mean: 20, stddev: 5 });
  });

  it.each([
    '',
    'fast',
    'fixed:',
    'fixed:-1',
    'uniform:10-1',
    'uniform:1',
    'exp:',
    'exp:abc',
    'normal:20',
    'gamma:2,3',
    'fixed:1e3',
  ])('rejects %j with a Validation error naming run_ms', (spec) => {
    let caught: unknown;
    try {
      parseRunMs(spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StorageError);
    expect((caught as StorageError).kind).toBe('Validation');
    expect((caught as StorageError).message).toMatch(/run_ms/);
  });

  it('round-trips through formatRunMs', () => {
    for (const spec of ['fixed:5', 'uniform:1-10', 'exp:5', 'normal:20,5']) {
      expect(formatRunMs(parseRunMs(spec))).toBe(spec);
    }
  });

  it('samples within the bounds and near the mean', () => {
    const random = lcg();
    const n = 20_000;
    for (const spec of ['fixed:5', 'uniform:1-10', 'exp:5', 'normal:20,5']) {
      const dist = parseRunMs(spec);
      let sum = 0;
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < n; i += 1) {
        const v = sampleRunMs(dist, random);
        sum += v;
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBeGreaterThanOrEqual(0);
      if (dist.kind === 'uniform') {
        expect(min).toBeGreaterThanOrEqual(1);
        expect(max).toBeLessThanOrEqual(10);
      }
      if (dist.kind === 'exp') expect(max).toBeLessThanOrEqual(5 * EXP_CAP_FACTOR);
      expect(Math.abs(sum / n - meanRunMs(dist))).toBeLessThan(meanRunMs(dist) * 0.05);
    }
  });

  it('caps exponential draws', () => {
    // u → 1 gives an unbounded draw without the cap.
    expect(sampleRunMs({ kind: 'exp', mean: 2 }, () => 1 - 1e-300)).toBe(2 * EXP_CAP_FACTOR);
  });
});

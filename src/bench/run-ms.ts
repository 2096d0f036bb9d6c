/**
 * The simulated run time distribution of `--run-ms`:
 *   `5` or `fixed:5`          always 5 ms
 *   `uniform:1-10`            uniformly between 1 and 10 ms
 *   `exp:5`                   exponential with mean 5 ms (capped at 20× the mean so one draw cannot stall a run)
 *   `normal:20,5`             normal with mean 20 ms and standard deviation 5 ms, clamped at 0
 * Values are milliseconds, non-negative, finite.
 */
import { StorageError } from '../contract/errors.js';

export type RunMsDistribution =
  | { kind: 'fixed'; ms: number }
  | { kind: 'uniform'; min: number; max: number }
  | { kind: 'exp'; mean: number }
  | { kind: 'normal'; mean: number; stddev: number };

/** A source of uniform [0, 1) numbers; injectable so tests and replays are deterministic. */
export type RandomSource = () => number;

/** Exponential draws above this multiple of the mean are clamped (a bench run must finish). */
export const EXP_CAP_FACTOR = 20;

const NUMBER = String.raw`(\d+(?:\.\d+)?)`;

function invalid(spec: string, why: string): StorageError {
  return StorageError.validation(
    `run_ms '${spec}' ${why}; expected e.g. fixed:5, uniform:1-10, exp:5, normal:20,5`,
  );
}

function num(text: string | undefined, spec: string): number {
  const n = Number(text);
  if (text === undefined || !Number.isFinite(n) || n < 0) throw invalid(spec, 'has an invalid number');
  return n;
}

export function parseRunMs(spec: string): RunMsDistribution {
  const text = spec.trim();
  let m = new RegExp(`^(?:fixed:)?${NUMBER}$`).exec(text);
  if (m) return { kind: 'fixed', ms: num(m[1], spec) };
  m = new RegExp(`^uniform:${NUMBER}-${NUMBER}$`).exec(text);
  if (m) {
    const min = num(m[1], spec);
    const max = num(m[2], spec);
    if (max < min) throw invalid(spec, 'has max below min');
    return { kind: 'uniform', min, max };
  }
  m = new RegExp(`^exp:${NUMBER}$`).exec(text);
  if (m) return { kind: 'exp', mean: num(m[1], spec) };
  m = new RegExp(`^normal:${NUMBER},${NUMBER}$`).exec(text);
  if (m) return { kind: 'normal', mean: num(m[1], spec), stddev: num(m[2], spec) };
  throw invalid(spec, 'is not a known distribution');
}

/** One draw in milliseconds (>= 0). */
export function sampleRunMs(dist: RunMsDistribution, random: RandomSource = Math.random): number {
  switch (dist.kind) {
    case 'fixed':
      return dist.ms;
    case 'uniform':
      return dist.min + (dist.max - dist.min) * random();
    case 'exp': {
      // Inverse CDF; 1 - u is in (0, 1] so the log is finite.
      const draw = -dist.mean * Math.log(1 - random());
      return Math.min(draw, dist.mean * EXP_CAP_FACTOR);
    }
    case 'normal': {
      // Box–Muller.
      const u1 = 1 - random();
      const u2 = random();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      return Math.max(0, dist.mean + dist.stddev * z);
    }
  }
}

/** The mean of the distribution, for sizing (e.g. the BullMQ baseline's expected duration). */
export function meanRunMs(dist: RunMsDistribution): number {
  switch (dist.kind) {
    case 'fixed':
      return dist.ms;
    case 'uniform':
      return (dist.min + dist.max) / 2;
    case 'exp':
      return dist.mean;
    case 'normal':
      return dist.mean;
  }
}

export function formatRunMs(dist: RunMsDistribution): string {
  switch (dist.kind) {
    case 'fixed':
      return `fixed:${dist.ms}`;
    case 'uniform':
      return `uniform:${dist.min}-${dist.max}`;
    case 'exp':
      return `exp:${dist.mean}`;
    case 'normal':
      return `normal:${dist.mean},${dist.stddev}`;
  }
}

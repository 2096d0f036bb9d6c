/**
 * `ConfigError`: a configuration object the program was written with is wrong (an unknown key, a value of the
 * wrong type or out of range). It is a programming error to fix in the caller's code, not a storage failure,
 * so it is not a `StorageError`; `kind` is still `'Validation'` for code that switches on the kind.
 */
import type { z } from 'zod';
import { locateZodError } from '../contract/schemas.js';

export class ConfigError extends Error {
  /** Same value a `StorageError` of bad input carries, for callers that only look at `kind`. */
  readonly kind = 'Validation' as const;
  /** The offending key, e.g. `config.leaseMs` (the object itself when the problem is not one key). */
  readonly key: string;

  constructor(key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

/** Edit distance, for "did you mean" suggestions on short key names. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known key closest to `key`, when it is close enough to be a typo. */
export function closestKey(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(best.length / 4)) ? best : null;
}

/**
 * A `ConfigError` for a failed zod parse of the object at `root`: an unknown key is named with the known key
 * it most likely meant; any other problem is named by its path.
 */
export function configErrorFromZod(err: z.ZodError, root: string, known: readonly string[]): ConfigError {
  const issue = err.issues[0];
  if (issue?.code === 'unrecognized_keys' && issue.keys.length > 0) {
    const key = issue.keys[0]!;
    const guess = closestKey(key, known);
    const hint = guess !== null ? `did you mean ${guess}?` : `the options are ${known.join(', ')}`;
    return new ConfigError(`${root}.${key}`, `unknown option (${hint})`);
  }
  const { field, problem } = locateZodError(err, root);
  return new ConfigError(field, problem);
}

/** A `ConfigError` from a `<key>: <problem>` sentence (checks that span several keys name the first one). */
export function configError(message: string): ConfigError {
  const colon = message.indexOf(': ');
  return colon < 0
    ? new ConfigError('config', message)
    : new ConfigError(message.slice(0, colon), message.slice(colon + 2));
}

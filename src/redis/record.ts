/**
 * A dispatch record as a Redis hash: one field per RunDispatch attribute, integers as decimal strings,
 * `termination` as its JSON, null = field absent (readable with `redis-cli HGETALL`). Decoding validates
 * with the contract codec (`runDispatchFromWire`): a corrupt record raises `Serialization` naming the
 * dispatch, never a crash and never a half-decoded record.
 */
import { StorageError } from '../contract/errors.js';
import { runDispatchFromWire, terminationToWire } from '../contract/codec.js';
import type { RunDispatch, TerminationReason } from '../contract/types.js';

const INT_FIELDS = new Set([
  'priority',
  'dispatch_epoch',
  'available_at',
  'attempt_count',
  'max_attempts',
  'lease_until',
  'completed_at',
  'created_at',
  'updated_at',
]);

/** Fields every stored record carries (the codec would default some of them; a hash must not). */
const REQUIRED_FIELDS = [
  'dispatch_id',
  'thread_id',
  'run_id',
  'priority',
  'dispatch_epoch',
  'status',
  'available_at',
  'attempt_count',
  'max_attempts',
  'created_at',
  'updated_at',
] as const;

const DIGITS = /^\d{1,16}$/;

/** Pairs `[field, value, field, value, ...]` (a Lua `flat()` or HGETALL reply) as an object. */
export function pairsToObject(id: string, pairs: unknown): Record<string, string> {
  if (!Array.isArray(pairs) || pairs.length % 2 !== 0) {
    throw StorageError.serialization(`dispatch '${id}': record reply is not a field/value list`);
  }
  const out: Record<string, string> = {};
  for (let i = 0; i < pairs.length; i += 2) {
    const field: unknown = pairs[i];
    const value: unknown = pairs[i + 1];
    if (typeof field !== 'string' || typeof value !== 'string') {
      throw StorageError.serialization(`dispatch '${id}': record reply holds a non-string entry`);
    }
    out[field] = value;
  }
  return out;
}

/** Decode and validate a stored record. `id` is the id the caller looked up (the key's id). */
export function recordFromHash(id: string, fields: Readonly<Record<string, string>>): RunDispatch {
  const fail = (what: string): StorageError => StorageError.serialization(`dispatch '${id}': ${what}`);
  for (const field of REQUIRED_FIELDS) {
    if (fields[field] === undefined) throw fail(`field ${field} is missing`);
  }
  if (fields.dispatch_id !== id) throw fail('dispatch_id field does not match its key');
  const wire: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (INT_FIELDS.has(field)) {
      // Anything but plain digits stays a string, which the schema rejects with the field's name.
      wire[field] = DIGITS.test(value) ? Number(value) : value;
    } else if (field === 'termination') {
      try {
        wire[field] = JSON.parse(value) as unknown;
      } catch {
        throw fail('termination: invalid JSON');
      }
    } else {
      wire[field] = value;
    }
  }
  try {
    return runDispatchFromWire(wire);
  } catch (err) {
    if (err instanceof StorageError) {
      throw err.detail.startsWith(`dispatch '${id}'`) ? err : fail(err.detail);
    }
    throw err;
  }
}

/** Field/value pairs for `enqueue.lua` (status and dispatch_epoch are set by the script). */
export function enqueueFields(d: RunDispatch): string[] {
  const out = [
    'dispatch_id',
    d.dispatch_id,
    'thread_id',
    d.thread_id,
    'run_id',
    d.run_id,
    'priority',
    String(d.priority),
    'available_at',
    String(d.available_at),
    'attempt_count',
    String(d.attempt_count),
    'max_attempts',
    String(d.max_attempts),
    'created_at',
    String(d.created_at),
    'updated_at',
    String(d.updated_at),
  ];
  if (d.dedupe_key !== null) out.push('dedupe_key', d.dedupe_key);
  if (d.last_error !== null) out.push('last_error', d.last_error);
  return out;
}

export function terminationJson(t: TerminationReason): string {
  return JSON.stringify(terminationToWire(t));
}

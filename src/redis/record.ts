/**
 * A dispatch record as a Redis hash: one field per RunDispatch attribute, integers as decimal strings,
 * `termination` as its JSON, null = field absent (readable with `redis-cli HGETALL`). Decoding validates
 * with the contract codec (`runDispatchFromWire`): a corrupt record raises `Serialization` naming the
 * dispatch, never a crash and never a half-decoded record.
 */
import { StorageError } from '../contract/errors.js';
import { runDispatchFromWire, terminationToWire } from '../contract/codec.js';
import { fastTermination } from '../contract/fast-parse.js';
import { RUN_DISPATCH_STATUSES, RUN_STATUSES } from '../contract/types.js';
import type { RunDispatch, RunDispatchStatus, TerminationReason } from '../contract/types.js';
import type { SignalTarget } from '../signals/filter.js';
import { validateForPersist } from '../contract/validate.js';

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

/**
 * Separator of a packed record reply (Lua `packed()`): `field NUL value NUL field ...` as one string. A
 * script packs a record only when none of its names and values holds a NUL byte, so splitting is exact. One
 * bulk string instead of a list of ~40 costs the client a fraction of the decoding (ioredis builds every
 * list entry separately).
 */
const PACK_SEPARATOR = '\u0000';

/**
 * Pairs `[field, value, field, value, ...]` (a Lua `flat()` or HGETALL reply), or the same pairs packed into
 * one string (Lua `packed()`), as an object.
 */
export function pairsToObject(id: string, reply: unknown): Record<string, string> {
  const pairs = typeof reply === 'string' ? reply.split(PACK_SEPARATOR) : reply;
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

const STATUSES: ReadonlySet<string> = new Set(RUN_DISPATCH_STATUSES);
const RUN_STATUS_SET: ReadonlySet<string> = new Set(RUN_STATUSES);
const U32_MAX = 0xffff_ffff;

function fastInt(value: string | undefined): number | null | undefined {
  if (value === undefined) return null;
  if (!DIGITS.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The hot-path decoder: plain checks instead of the schema for the records the store hands to a running
 * node (every claim returns one). It accepts a subset of what `recordFromHash`'s validating path accepts and
 * returns the same record; anything it is unsure of (a termination with a nested value, a bad field) answers
 * `undefined`, and the validating path then decodes the record or names exactly what is wrong.
 */
export function decodeCommonRecord(id: string, f: Readonly<Record<string, string>>): RunDispatch | undefined {
  if (f.dispatch_id !== id) return undefined;
  let termination: TerminationReason | null = null;
  if (f.termination !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(f.termination);
    } catch {
      return undefined;
    }
    const t = fastTermination(parsed);
    if (t === undefined) return undefined;
    termination = t;
  }
  const { thread_id, run_id, status } = f;
  if (thread_id === undefined || run_id === undefined || status === undefined || !STATUSES.has(status)) {
    return undefined;
  }
  const runStatus = f.run_status;
  if (runStatus !== undefined && !RUN_STATUS_SET.has(runStatus)) return undefined;
  const priority = fastInt(f.priority);
  const epoch = fastInt(f.dispatch_epoch);
  const availableAt = fastInt(f.available_at);
  const attempts = fastInt(f.attempt_count);
  const maxAttempts = fastInt(f.max_attempts);
  const createdAt = fastInt(f.created_at);
  const updatedAt = fastInt(f.updated_at);
  const leaseUntil = fastInt(f.lease_until);
  const completedAt = fastInt(f.completed_at);
  if (
    priority == null ||
    priority > 255 ||
    epoch == null ||
    availableAt == null ||
    attempts == null ||
    attempts > U32_MAX ||
    maxAttempts == null ||
    maxAttempts > U32_MAX ||
    createdAt == null ||
    updatedAt == null ||
    leaseUntil === undefined ||
    completedAt === undefined
  ) {
    return undefined;
  }
  const d: RunDispatch = {
    dispatch_id: id,
    thread_id,
    run_id,
    priority,
    dedupe_key: f.dedupe_key ?? null,
    dispatch_epoch: epoch,
    status: status as RunDispatch['status'],
    available_at: availableAt,
    attempt_count: attempts,
    max_attempts: maxAttempts,
    last_error: f.last_error ?? null,
    claim_token: f.claim_token ?? null,
    claimed_by: f.claimed_by ?? null,
    lease_until: leaseUntil,
    dispatch_instance_id: f.dispatch_instance_id ?? null,
    run_status: (runStatus ?? null) as RunDispatch['run_status'],
    termination,
    run_response: f.run_response ?? null,
    run_error: f.run_error ?? null,
    completed_at: completedAt,
    created_at: createdAt,
    updated_at: updatedAt,
  };
  try {
    validateForPersist(d);
  } catch {
    return undefined;
  }
  return d;
}

/** Decode and validate a stored record. `id` is the id the caller looked up (the key's id). */
export function recordFromHash(id: string, fields: Readonly<Record<string, string>>): RunDispatch {
  return decodeCommonRecord(id, fields) ?? decodeRecordWithSchema(id, fields);
}

/** The validating path: the contract codec's schema, with error messages that name the bad field. */
export function decodeRecordWithSchema(id: string, fields: Readonly<Record<string, string>>): RunDispatch {
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

/**
 * The arguments of `enqueue.lua`: the values of the nine required fields in a fixed order (dispatch_id,
 * thread_id, run_id, priority, available_at, attempt_count, max_attempts, created_at, updated_at; the script
 * supplies their names), then field/value pairs for dedupe_key and last_error when not null. Status and
 * dispatch_epoch are set by the script.
 */
export function enqueueArgs(d: RunDispatch): string[] {
  const out = [
    d.dispatch_id,
    d.thread_id,
    d.run_id,
    String(d.priority),
    String(d.available_at),
    String(d.attempt_count),
    String(d.max_attempts),
    String(d.created_at),
    String(d.updated_at),
  ];
  if (d.dedupe_key !== null) out.push('dedupe_key', d.dedupe_key);
  if (d.last_error !== null) out.push('last_error', d.last_error);
  return out;
}

export function terminationJson(t: TerminationReason): string {
  return JSON.stringify(terminationToWire(t));
}

/** The fields a pulled signal's filter reads (`SIGNAL_TARGET_FIELDS` order), fetched with one HMGET. */
export const SIGNAL_TARGET_FIELDS = ['dispatch_id', 'thread_id', 'status', 'available_at'] as const;

/**
 * Decode an HMGET of `SIGNAL_TARGET_FIELDS`: null when the record is missing (every field absent), the
 * four fields when they are well formed, else `Serialization` naming the bad field. A signal needs no
 * more of its record: whoever claims the dispatch reads and checks the whole of it.
 */
export function signalTargetFromFields(id: string, values: readonly (string | null)[]): SignalTarget | null {
  const [dispatchId, threadId, status, availableAt] = values;
  if (dispatchId == null && threadId == null && status == null && availableAt == null) return null;
  const fail = (what: string): StorageError => StorageError.serialization(`dispatch '${id}': ${what}`);
  if (dispatchId !== id) throw fail('dispatch_id field does not match its key');
  if (threadId == null || threadId.trim().length === 0) throw fail('thread_id is missing or blank');
  if (status == null || !STATUSES.has(status)) throw fail('status is not a RunDispatchStatus');
  const available = fastInt(availableAt ?? undefined);
  if (available == null) throw fail('available_at is missing or not a non-negative safe integer');
  return {
    dispatch_id: id,
    thread_id: threadId,
    status: status as RunDispatchStatus,
    available_at: available,
  };
}

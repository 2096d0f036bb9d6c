/**
 * Boundary validation for every public store method. Both stores call these first, so bad input gives the
 * same `Validation` error everywhere and nothing is touched.
 */
import type { z } from 'zod';
import { StorageError } from './errors.js';
import { normalizeRunDispatch } from './codec.js';
import { fastLiveTarget, fastRunResult } from './fast-parse.js';
import {
  describeZodError,
  liveRunCommandSchema,
  liveRunTargetSchema,
  runDispatchResultSchema,
  runDispatchStatus,
} from './schemas.js';
import type {
  LiveRunCommand,
  LiveRunTarget,
  RunDispatch,
  RunDispatchResult,
  RunDispatchStatus,
} from './types.js';
import { validateForEnqueue } from './validate.js';

/** Longest id (dispatch, thread, run, token, consumer, dedupe key) accepted, in UTF-16 code units. */
export const MAX_ID_LENGTH = 4096;
/** Longest free text (error, reason, response) accepted. */
export const MAX_TEXT_LENGTH = 1 << 20;
/** Upper bound for `limit` / `max` arguments: every batch the store runs is bounded. */
export const MAX_BATCH = 10_000;
/** Upper bound for `offset` arguments. */
export const MAX_OFFSET = 10_000_000;
/** Longest a signal pull may wait. */
export const MAX_PULL_EXPIRES_MS = 300_000;

function fail(message: string): never {
  throw StorageError.validation(message);
}

export function id(name: string, value: unknown): string {
  if (typeof value !== 'string') fail(`${name} must be a string`);
  if (value.trim().length === 0) fail(`${name} must not be empty`);
  if (value.length > MAX_ID_LENGTH) fail(`${name} must be at most ${MAX_ID_LENGTH} characters`);
  return value;
}

export function text(name: string, value: unknown): string {
  if (typeof value !== 'string') fail(`${name} must be a string`);
  if (value.length > MAX_TEXT_LENGTH) fail(`${name} must be at most ${MAX_TEXT_LENGTH} characters`);
  return value;
}

export function u64(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(`${name} must be a non-negative safe integer`);
  }
  return value;
}

export function bounded(name: string, value: unknown, max: number): number {
  const n = u64(name, value);
  if (n > max) fail(`${name} must be at most ${max}`);
  return n;
}

/** `now + delta` must stay a safe integer (leases, retry times). */
export function deadline(now: number, delta: number, name: string): number {
  const sum = now + delta;
  if (!Number.isSafeInteger(sum)) fail(`now + ${name} must be a safe integer`);
  return sum;
}

/**
 * The lease arguments every claim takes, validated in the contract's order: `consumer_id`, `lease_ms`,
 * `now`, then the lease deadline `now + lease_ms`. `idOf` lets a store apply a stricter id check; `prefix`
 * goes in front of the field names (`next.` for the claim `completeAndClaimNext` chains).
 */
export function claimLease(
  consumerId: unknown,
  leaseMs: unknown,
  now: unknown,
  idOf: (name: string, value: unknown) => string = id,
  prefix = '',
): { consumer: string; leaseUntil: number } {
  const consumer = idOf(`${prefix}consumer_id`, consumerId);
  const lease = u64(`${prefix}lease_ms`, leaseMs);
  return { consumer, leaseUntil: deadline(u64(`${prefix}now`, now), lease, `${prefix}lease_ms`) };
}

/**
 * The `next` argument of `completeAndClaimNext`, validated as `claimAndStart` validates its arguments
 * (`next.` prefixes the field names).
 */
export function nextClaim(
  next: unknown,
  now: number,
  idOf: (name: string, value: unknown) => string = id,
): { threadId: string; consumer: string; leaseUntil: number; instance: string } {
  if (typeof next !== 'object' || next === null) fail('next must be an object');
  const n = next as Record<string, unknown>;
  const threadId = idOf('next.thread_id', n.threadId);
  const { consumer, leaseUntil } = claimLease(n.consumerId, n.leaseMs, now, idOf, 'next.');
  const instance = idOf('next.dispatch_instance_id', n.dispatchInstanceId);
  return { threadId, consumer, leaseUntil, instance };
}

function parse<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) fail(describeZodError(parsed.error, root));
  return parsed.data;
}

export function status(name: string, value: unknown): RunDispatchStatus {
  return parse(runDispatchStatus, value, name);
}

export function statusFilter(value: unknown): readonly RunDispatchStatus[] | null {
  if (value === null || value === undefined) return null;
  if (!Array.isArray(value)) fail('status_filter must be null or an array of statuses');
  if (value.length > 16) fail('status_filter must have at most 16 entries');
  return value.map((s, i) => status(`status_filter.${i}`, s));
}

/** Parse, normalize and `validate_for_enqueue` a dispatch given to `enqueue`. */
export function dispatchForEnqueue(value: unknown): RunDispatch {
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('dispatch must be an object');
  let d: RunDispatch;
  try {
    d = normalizeRunDispatch(value, 'dispatch');
  } catch (err) {
    fail((err as StorageError).detail);
  }
  for (const field of ['dispatch_id', 'thread_id', 'run_id'] as const) {
    if (d[field].length > MAX_ID_LENGTH) fail(`${field} must be at most ${MAX_ID_LENGTH} characters`);
  }
  if (d.dedupe_key !== null) id('dedupe_key', d.dedupe_key);
  if (d.last_error !== null) text('last_error', d.last_error);
  validateForEnqueue(d);
  return d;
}

export function runResult(value: unknown): RunDispatchResult {
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('result must be an object');
  const r = fastRunResult(value) ?? runResultWithSchema(value);
  id('result.run_id', r.run_id);
  id('result.dispatch_instance_id', r.dispatch_instance_id);
  if (r.response !== null) text('result.response', r.response);
  if (r.error !== null) text('result.error', r.error);
  return r;
}

/** The run result through the schema alone (what the fast path must agree with). */
export function runResultWithSchema(value: unknown): RunDispatchResult {
  const r = parse(runDispatchResultSchema, value, 'result');
  return {
    run_id: r.run_id,
    dispatch_instance_id: r.dispatch_instance_id,
    status: r.status,
    termination: (r.termination ?? null) as RunDispatchResult['termination'],
    response: r.response ?? null,
    error: r.error ?? null,
  };
}

export function liveCommand(value: unknown): LiveRunCommand {
  return parse(liveRunCommandSchema, value, 'command') as LiveRunCommand;
}

export function liveTarget(value: unknown): LiveRunTarget {
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('target must be an object');
  // Plain strings (the usual target, one per run) need no schema; anything else gets its error message.
  const t = fastLiveTarget(value) ?? parse(liveRunTargetSchema, value, 'target');
  id('target.thread_id', t.thread_id);
  id('target.run_id', t.run_id);
  if (t.dispatch_id != null) id('target.dispatch_id', t.dispatch_id);
  return { thread_id: t.thread_id, run_id: t.run_id, dispatch_id: t.dispatch_id ?? null };
}

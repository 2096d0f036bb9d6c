/**
 * Plain-code parsers for the shapes the hot path sees on every dispatch (a record to enqueue, a run result,
 * a termination, a run's live target): the schemas in schemas.ts stay the definition and the error messages. Each parser here
 * accepts a subset of what its schema accepts and returns what the schema path returns for it; for anything
 * else (a legacy alias, a nested shape, a wrong type) it answers `undefined` and the caller runs the schema,
 * which either accepts the value or names exactly what is wrong.
 *
 * Why: the schema library allocates several objects per field it checks (~2 KB per record), which on a busy
 * node made validation a measurable share of a dispatch's CPU and of its garbage.
 */
import type {
  LiveRunTarget,
  RunDispatch,
  RunDispatchResult,
  RunDispatchStatus,
  RunStatus,
  TerminationReason,
} from './types.js';

const U32_MAX = 0xffff_ffff;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isU64 = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function isRunStatus(v: unknown): v is RunStatus {
  return v === 'done' || v === 'running' || v === 'waiting' || v === 'created';
}

function isDispatchStatus(v: unknown): v is RunDispatchStatus {
  return (
    v === 'Queued' ||
    v === 'Claimed' ||
    v === 'Acked' ||
    v === 'Cancelled' ||
    v === 'Superseded' ||
    v === 'DeadLetter'
  );
}

/** `undefined` → the default, a string or null as it is; anything else is not for the fast path (false). */
function nullableString(v: unknown): string | null | false {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? v : false;
}

/**
 * A termination without a nested value (`natural_end`, `behavior_requested`, `cancelled`, `suspended`), or
 * `error` / `blocked` with a string value. Extra keys are dropped, as the schema drops them.
 */
export function fastTermination(v: unknown): TerminationReason | undefined {
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'natural_end':
    case 'behavior_requested':
    case 'cancelled':
    case 'suspended':
      return { type: v.type };
    case 'error':
    case 'blocked':
      return typeof v.value === 'string' ? { type: v.type, value: v.value } : undefined;
    default:
      return undefined;
  }
}

/** `undefined` or null → null, a fast-path termination as it is; anything else is not for the fast path (false). */
function nullableTermination(v: unknown): TerminationReason | null | false {
  if (v === undefined || v === null) return null;
  return fastTermination(v) ?? false;
}

/** A run result whose fields all have their plain types (what `runDispatchResultSchema` returns for it). */
export function fastRunResult(v: unknown): RunDispatchResult | undefined {
  if (!isObject(v)) return undefined;
  const { run_id, dispatch_instance_id, status, termination, response, error } = v;
  if (typeof run_id !== 'string' || typeof dispatch_instance_id !== 'string' || !isRunStatus(status)) {
    return undefined;
  }
  const resp = nullableString(response);
  const err = nullableString(error);
  const term = nullableTermination(termination);
  if (resp === false || err === false || term === false) return undefined;
  return { run_id, dispatch_instance_id, status, termination: term, response: resp, error: err };
}

/**
 * A dispatch record whose fields all have their plain types, normalized as `normalizeRunDispatch` does
 * (contract defaults for absent fields, `available_at` and `updated_at` from `created_at`).
 */
export function fastRunDispatch(v: unknown): RunDispatch | undefined {
  if (!isObject(v)) return undefined;
  const { dispatch_id, thread_id, run_id, created_at } = v;
  if (typeof dispatch_id !== 'string' || typeof thread_id !== 'string' || typeof run_id !== 'string') {
    return undefined;
  }
  if (!isU64(created_at)) return undefined;
  const priority = v.priority === undefined ? 128 : v.priority;
  const epoch = v.dispatch_epoch === undefined ? 0 : v.dispatch_epoch;
  const status = v.status === undefined ? 'Queued' : v.status;
  const attempts = v.attempt_count === undefined ? 0 : v.attempt_count;
  const maxAttempts = v.max_attempts === undefined ? 5 : v.max_attempts;
  const availableAt = v.available_at === undefined ? created_at : v.available_at;
  const updatedAt = v.updated_at === undefined ? created_at : v.updated_at;
  if (
    !isU64(priority) ||
    priority > 255 ||
    !isU64(epoch) ||
    !isDispatchStatus(status) ||
    !isU64(attempts) ||
    attempts > U32_MAX ||
    !isU64(maxAttempts) ||
    maxAttempts > U32_MAX ||
    !isU64(availableAt) ||
    !isU64(updatedAt)
  ) {
    return undefined;
  }
  const leaseUntil = v.lease_until === undefined ? null : v.lease_until;
  const completedAt = v.completed_at === undefined ? null : v.completed_at;
  if ((leaseUntil !== null && !isU64(leaseUntil)) || (completedAt !== null && !isU64(completedAt))) {
    return undefined;
  }
  const runStatus = v.run_status === undefined ? null : v.run_status;
  if (runStatus !== null && !isRunStatus(runStatus)) return undefined;
  const dedupeKey = nullableString(v.dedupe_key);
  const lastError = nullableString(v.last_error);
  const claimToken = nullableString(v.claim_token);
  const claimedBy = nullableString(v.claimed_by);
  const instanceId = nullableString(v.dispatch_instance_id);
  const runResponse = nullableString(v.run_response);
  const runError = nullableString(v.run_error);
  if (
    dedupeKey === false ||
    lastError === false ||
    claimToken === false ||
    claimedBy === false ||
    instanceId === false ||
    runResponse === false ||
    runError === false
  ) {
    return undefined;
  }
  const termination = nullableTermination(v.termination);
  if (termination === false) return undefined;
  return {
    dispatch_id,
    thread_id,
    run_id,
    priority,
    dedupe_key: dedupeKey,
    dispatch_epoch: epoch,
    status,
    available_at: availableAt,
    attempt_count: attempts,
    max_attempts: maxAttempts,
    last_error: lastError,
    claim_token: claimToken,
    claimed_by: claimedBy,
    lease_until: leaseUntil,
    dispatch_instance_id: instanceId,
    run_status: runStatus,
    termination,
    run_response: runResponse,
    run_error: runError,
    completed_at: completedAt,
    created_at,
    updated_at: updatedAt,
  };
}

/** A live target of plain strings (`dispatch_id` null or absent allowed), as `liveRunTargetSchema` returns it. */
export function fastLiveTarget(v: unknown): LiveRunTarget | undefined {
  if (!isObject(v)) return undefined;
  const { thread_id, run_id, dispatch_id } = v;
  if (typeof thread_id !== 'string' || typeof run_id !== 'string') return undefined;
  const dispatch = nullableString(dispatch_id);
  if (dispatch === false) return undefined;
  return { thread_id, run_id, dispatch_id: dispatch };
}

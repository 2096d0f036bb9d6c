/**
 * The field effects of every dispatch transition (the in-memory reference semantics), as pure functions from
 * the current record to the next one. The store checks the preconditions (status, token, epoch), validates the result
 * with `validateForPersist` and only then commits it, so a failed transition leaves nothing changed.
 */
import type { RunDispatch, RunDispatchResult } from '../contract/types.js';

/** The exact `last_error` reasons of the reference store (the same texts as upstream's in-memory store). */
export const REASON = {
  queuedByEpoch: 'queued dispatch superseded by newer dispatch epoch',
  queuedByInterrupt: 'queued dispatch superseded by interrupt',
  claimedByEpoch: 'claimed dispatch superseded by newer dispatch epoch',
  beforeStart: 'claimed dispatch superseded before runtime start',
  beforeResult: 'claimed dispatch superseded before run result',
  beforeNack: 'claimed dispatch superseded before nack',
  beforeDeadLetter: 'claimed dispatch superseded before dead letter',
  duringRenewal: 'claimed dispatch superseded during lease renewal',
  leaseAfterInterrupt: 'claimed dispatch lease expired after interrupt',
  leaseMaxAttempts: 'lease expired; max attempts reached',
} as const;

const U32_MAX = 0xffff_ffff;

const CLEAR_CLAIM = { claim_token: null, claimed_by: null, lease_until: null } as const;
const CLEAR_PROJECTION = {
  dispatch_instance_id: null,
  run_status: null,
  termination: null,
  run_response: null,
  run_error: null,
} as const;

/**
 * A copy of `d` built field by field, in one fixed order: every record of the hot transitions then shares one
 * object shape. A spread (`{...d, ...}`) copied through V8's generic path once records of several shapes met
 * there (and always for a second spread), which made the completion's record the costliest line of the
 * in-process workload's profile.
 */
export function copyFields(d: RunDispatch): RunDispatch {
  return {
    dispatch_id: d.dispatch_id,
    thread_id: d.thread_id,
    run_id: d.run_id,
    priority: d.priority,
    dedupe_key: d.dedupe_key,
    dispatch_epoch: d.dispatch_epoch,
    status: d.status,
    available_at: d.available_at,
    attempt_count: d.attempt_count,
    max_attempts: d.max_attempts,
    last_error: d.last_error,
    claim_token: d.claim_token,
    claimed_by: d.claimed_by,
    lease_until: d.lease_until,
    dispatch_instance_id: d.dispatch_instance_id,
    run_status: d.run_status,
    termination: d.termination,
    run_response: d.run_response,
    run_error: d.run_error,
    completed_at: d.completed_at,
    created_at: d.created_at,
    updated_at: d.updated_at,
  };
}

/**
 * A failed attempt (nack or lease expiry): +1, saturating. The count never passes `max_attempts`, so a
 * dispatch enqueued with `attempt_count == max_attempts` dead-letters on its next failure and stays a valid
 * record instead of failing `validate_for_persist` forever (which would wedge the lease sweep).
 */
function failedAttempts(d: RunDispatch): number {
  return Math.min(d.attempt_count + 1, U32_MAX, Math.max(d.max_attempts, d.attempt_count));
}

// The field changes of the hot transitions, made in place on a fresh copy (`copyFields`), so a composed
// transition (claim + start, result + ack) copies the record once.
function setClaimed(
  n: RunDispatch,
  token: string,
  consumer: string,
  leaseUntil: number,
  now: number,
): RunDispatch {
  n.status = 'Claimed';
  n.claim_token = token;
  n.claimed_by = consumer;
  n.lease_until = leaseUntil;
  n.updated_at = now;
  return n;
}

function setStarted(n: RunDispatch, instanceId: string, now: number): RunDispatch {
  n.dispatch_instance_id = instanceId;
  n.run_status = 'running';
  n.termination = null;
  n.run_response = null;
  n.run_error = null;
  n.completed_at = null;
  n.updated_at = now;
  return n;
}

function setResult(n: RunDispatch, r: RunDispatchResult, now: number): RunDispatch {
  n.dispatch_instance_id = r.dispatch_instance_id;
  n.run_status = r.status;
  n.termination = r.termination ?? null;
  n.run_response = r.response ?? null;
  n.run_error = r.error ?? null;
  n.completed_at = now;
  n.updated_at = now;
  return n;
}

function setAcked(n: RunDispatch, now: number): RunDispatch {
  n.claim_token = null;
  n.claimed_by = null;
  n.lease_until = null;
  n.status = 'Acked';
  n.completed_at = now;
  n.updated_at = now;
  return n;
}

export function claimed(
  d: RunDispatch,
  token: string,
  consumer: string,
  leaseUntil: number,
  now: number,
): RunDispatch {
  return setClaimed(copyFields(d), token, consumer, leaseUntil, now);
}

/**
 * `claimed` then `dispatchStarted`: what a claim that also starts its run (claim + start, a completion's
 * chained claim) commits once, when the start's owner checks pass by construction (same token, the thread's
 * current epoch).
 */
export function claimedAndStarted(
  d: RunDispatch,
  token: string,
  consumer: string,
  leaseUntil: number,
  instanceId: string,
  now: number,
): RunDispatch {
  return setStarted(setClaimed(copyFields(d), token, consumer, leaseUntil, now), instanceId, now);
}

export function leaseExtended(d: RunDispatch, leaseUntil: number, now: number): RunDispatch {
  const n = copyFields(d);
  n.lease_until = leaseUntil;
  n.updated_at = now;
  return n;
}

export function dispatchStarted(d: RunDispatch, instanceId: string, now: number): RunDispatch {
  return setStarted(copyFields(d), instanceId, now);
}

export function runResultRecorded(d: RunDispatch, r: RunDispatchResult, now: number): RunDispatch {
  return setResult(copyFields(d), r, now);
}

/** `runResultRecorded` then `acked`: a completion that records the result and acks, committed once. */
export function resultAcked(d: RunDispatch, r: RunDispatchResult, now: number): RunDispatch {
  return setAcked(setResult(copyFields(d), r, now), now);
}

export function acked(d: RunDispatch, now: number): RunDispatch {
  return setAcked(copyFields(d), now);
}

export function cancelled(d: RunDispatch, now: number): RunDispatch {
  return { ...d, ...CLEAR_CLAIM, status: 'Cancelled', completed_at: now, updated_at: now };
}

export function deadLettered(d: RunDispatch, error: string, now: number): RunDispatch {
  return {
    ...d,
    ...CLEAR_CLAIM,
    status: 'DeadLetter',
    last_error: error,
    completed_at: now,
    updated_at: now,
  };
}

/** Superseded; `epoch` null keeps dispatch_epoch, `reason` null keeps last_error. */
export function superseded(
  d: RunDispatch,
  now: number,
  epoch: number | null,
  reason: string | null,
): RunDispatch {
  return {
    ...d,
    ...CLEAR_CLAIM,
    ...CLEAR_PROJECTION,
    status: 'Superseded',
    dispatch_epoch: epoch ?? d.dispatch_epoch,
    last_error: reason ?? d.last_error,
    completed_at: now,
    updated_at: now,
  };
}

/** nack: back to Queued at `retryAt`, or DeadLetter (projection and available_at kept) when exhausted. */
export function nacked(d: RunDispatch, retryAt: number, error: string, now: number): RunDispatch {
  const attempt_count = failedAttempts(d);
  if (attempt_count >= d.max_attempts) {
    return {
      ...d,
      ...CLEAR_CLAIM,
      status: 'DeadLetter',
      attempt_count,
      last_error: error,
      completed_at: now,
      updated_at: now,
    };
  }
  return {
    ...d,
    ...CLEAR_CLAIM,
    ...CLEAR_PROJECTION,
    status: 'Queued',
    attempt_count,
    available_at: retryAt,
    last_error: error,
    completed_at: null,
    updated_at: now,
  };
}

/**
 * Back to Queued at `now`, attempt_count and last_error kept, claim and runtime projection cleared: a claim
 * handed back (stop, lost claim reply) or a dead letter requeued (see `deadLetterRequeued`).
 */
export function requeuedAt(d: RunDispatch, now: number): RunDispatch {
  return {
    ...d,
    ...CLEAR_CLAIM,
    ...CLEAR_PROJECTION,
    status: 'Queued',
    available_at: now,
    completed_at: null,
    updated_at: now,
  };
}

/** Lease expiry found by reclaim: Queued at `now`, or DeadLetter with the max-attempts reason. */
export function leaseExpired(d: RunDispatch, now: number): RunDispatch {
  const attempt_count = failedAttempts(d);
  const base = {
    ...d,
    ...CLEAR_CLAIM,
    ...CLEAR_PROJECTION,
    attempt_count,
    available_at: now,
    updated_at: now,
  };
  if (attempt_count >= d.max_attempts) {
    return { ...base, status: 'DeadLetter', last_error: REASON.leaseMaxAttempts, completed_at: now };
  }
  return { ...base, status: 'Queued', completed_at: null };
}

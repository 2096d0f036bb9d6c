/**
 * The records the Mailbox's events carry after its own transitions, computed locally from the claimed record
 * and the transition it just made (contract.md §2.6), so events cost no extra store read.
 */
import type { LiveRunTarget, RunDispatch, RunDispatchResult } from '../contract/types.js';

const CLAIM_CLEARED = { claim_token: null, claimed_by: null, lease_until: null } as const;
const PROJECTION_CLEARED = {
  dispatch_instance_id: null,
  run_status: null,
  termination: null,
  run_response: null,
  run_error: null,
} as const;

export function withResult(d: RunDispatch, result: RunDispatchResult, now: number): RunDispatch {
  return {
    ...d,
    dispatch_instance_id: result.dispatch_instance_id,
    run_status: result.status,
    termination: result.termination ?? null,
    run_response: result.response ?? null,
    run_error: result.error ?? null,
    completed_at: now,
    updated_at: now,
  };
}

export function acked(d: RunDispatch, now: number): RunDispatch {
  return { ...d, ...CLAIM_CLEARED, status: 'Acked', completed_at: now, updated_at: now };
}

export function deadLettered(d: RunDispatch, error: string, now: number): RunDispatch {
  return {
    ...d,
    ...CLAIM_CLEARED,
    status: 'DeadLetter',
    last_error: error,
    completed_at: now,
    updated_at: now,
  };
}

/** After `nack`: requeued with `available_at = retryAt`, or dead-lettered once attempts are exhausted. */
export function nacked(d: RunDispatch, retryAt: number, error: string, now: number): RunDispatch {
  const attempts = Math.min(d.attempt_count + 1, 0xffff_ffff);
  if (attempts >= d.max_attempts) {
    return { ...deadLettered(d, error, now), attempt_count: attempts };
  }
  return {
    ...d,
    ...CLAIM_CLEARED,
    ...PROJECTION_CLEARED,
    status: 'Queued',
    attempt_count: attempts,
    available_at: retryAt,
    last_error: error,
    completed_at: null,
    updated_at: now,
  };
}

/** The exact live target of a claimed dispatch (thread, run, dispatch), as upstream builds it. */
export function targetOf(d: Pick<RunDispatch, 'thread_id' | 'run_id' | 'dispatch_id'>): LiveRunTarget {
  return { thread_id: d.thread_id, run_id: d.run_id, dispatch_id: d.dispatch_id };
}

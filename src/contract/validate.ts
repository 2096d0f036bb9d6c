import { StorageError } from './errors.js';
import type { RunDispatch } from './types.js';

function blank(value: string): boolean {
  return value.trim().length === 0;
}

/**
 * Identity rules shared by enqueue and persist validation: non-blank ids, `max_attempts` at least 1 and
 * `attempt_count` never above it.
 */
function validateIdentity(d: RunDispatch): void {
  for (const field of ['dispatch_id', 'thread_id', 'run_id'] as const) {
    if (blank(d[field])) throw StorageError.validation(`${field} must not be empty`);
  }
  if (d.max_attempts <= 0) {
    throw StorageError.validation(`dispatch '${d.dispatch_id}' max_attempts must be greater than zero`);
  }
  if (d.attempt_count > d.max_attempts) {
    throw StorageError.validation(`dispatch '${d.dispatch_id}' attempt_count must not exceed max_attempts`);
  }
}

function hasProjection(d: RunDispatch): boolean {
  return (
    d.dispatch_instance_id !== null ||
    d.run_status !== null ||
    d.termination !== null ||
    d.run_response !== null ||
    d.run_error !== null
  );
}

function hasClaimFields(d: RunDispatch): boolean {
  return d.claim_token !== null || d.claimed_by !== null || d.lease_until !== null;
}

function validateQueuedShape(d: RunDispatch): void {
  if (hasClaimFields(d))
    throw StorageError.validation(`Queued dispatch '${d.dispatch_id}' must not carry claim fields`);
  if (d.completed_at !== null) {
    throw StorageError.validation(`Queued dispatch '${d.dispatch_id}' must not carry completed_at`);
  }
  if (hasProjection(d)) {
    throw StorageError.validation(`Queued dispatch '${d.dispatch_id}' must not carry runtime result fields`);
  }
}

/** `validate_for_enqueue`: identity, status Queued and a clean Queued shape. */
export function validateForEnqueue(d: RunDispatch): void {
  validateIdentity(d);
  if (d.status !== 'Queued')
    throw StorageError.validation(`enqueued dispatch '${d.dispatch_id}' must start as Queued`);
  validateQueuedShape(d);
}

/** `validate_for_persist`: the lifecycle invariants every stored record satisfies. */
export function validateForPersist(d: RunDispatch): void {
  validateIdentity(d);
  switch (d.status) {
    case 'Queued':
      validateQueuedShape(d);
      return;
    case 'Claimed':
      if (
        d.claim_token === null ||
        blank(d.claim_token) ||
        d.claimed_by === null ||
        blank(d.claimed_by) ||
        d.lease_until === null
      ) {
        throw StorageError.validation(
          `Claimed dispatch '${d.dispatch_id}' must carry claim_token, claimed_by, and lease_until`,
        );
      }
      return;
    default:
      if (hasClaimFields(d)) {
        throw StorageError.validation(
          `${d.status} dispatch '${d.dispatch_id}' must not carry active lease fields`,
        );
      }
      if (d.completed_at === null) {
        throw StorageError.validation(`${d.status} dispatch '${d.dispatch_id}' must carry completed_at`);
      }
  }
}

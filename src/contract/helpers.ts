import type { RunDispatch, RunDispatchInput } from './types.js';

export const DEFAULT_PRIORITY = 128;
export const DEFAULT_MAX_ATTEMPTS = 5;

/**
 * A valid Queued record with the contract defaults (priority 128, max_attempts 5, available_at = created_at,
 * epoch 0, every optional field null); `overrides` win.
 */
export function queuedDispatch(
  fields: Pick<RunDispatch, 'dispatch_id' | 'thread_id' | 'run_id' | 'created_at'> &
    Partial<RunDispatchInput>,
): RunDispatch {
  return {
    priority: DEFAULT_PRIORITY,
    dedupe_key: null,
    dispatch_epoch: 0,
    status: 'Queued',
    available_at: fields.created_at,
    attempt_count: 0,
    max_attempts: DEFAULT_MAX_ATTEMPTS,
    last_error: null,
    claim_token: null,
    claimed_by: null,
    lease_until: null,
    dispatch_instance_id: null,
    run_status: null,
    termination: null,
    run_response: null,
    run_error: null,
    completed_at: null,
    updated_at: fields.created_at,
    ...fields,
  };
}

/**
 * Record copies and the orderings the memory store indexes by. Stored records are never handed out:
 * callers get copies, so nothing they do can change stored state.
 */
import { copyFields } from '../contract/transitions.js';
import type { RunDispatch, TerminationReason } from '../contract/types.js';

function copyTermination(t: TerminationReason): TerminationReason {
  return t.type === 'stopped' ? { type: 'stopped', value: { ...t.value } } : { ...t };
}

export function copyRecord(d: RunDispatch): RunDispatch {
  const n = copyFields(d);
  if (n.termination !== null) n.termination = copyTermination(n.termination);
  return n;
}

/** Ids compare by UTF-16 code units (JS `<`), the order `Array.prototype.sort` gives strings. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Claim and list order: priority (0 first), created_at, then dispatch_id. */
export function compareQueueOrder(a: RunDispatch, b: RunDispatch): number {
  return a.priority - b.priority || a.created_at - b.created_at || compareIds(a.dispatch_id, b.dispatch_id);
}

/** Not-yet-available Queued dispatches: by available_at, then queue order. */
export function compareAvailability(a: RunDispatch, b: RunDispatch): number {
  return a.available_at - b.available_at || compareQueueOrder(a, b);
}

/** `list_terminal_dispatches` order: updated_at, created_at, dispatch_id. */
export function compareTerminal(a: RunDispatch, b: RunDispatch): number {
  return (
    a.updated_at - b.updated_at || a.created_at - b.created_at || compareIds(a.dispatch_id, b.dispatch_id)
  );
}

/** Lease index: the earliest lease_until first, ties by dispatch_id. */
export function compareLease(a: RunDispatch, b: RunDispatch): number {
  return (a.lease_until ?? 0) - (b.lease_until ?? 0) || compareIds(a.dispatch_id, b.dispatch_id);
}

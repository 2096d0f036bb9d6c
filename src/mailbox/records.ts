/**
 * Helpers over the records the Mailbox holds. The records its events carry after its own transitions come
 * from the store's pure transitions (src/contract/transitions.ts), so events cost no extra store read.
 */
import type { LiveRunTarget, RunDispatch } from '../contract/types.js';

/** The exact live target of a claimed dispatch (thread, run, dispatch), as upstream builds it. */
export function targetOf(d: Pick<RunDispatch, 'thread_id' | 'run_id' | 'dispatch_id'>): LiveRunTarget {
  return { thread_id: d.thread_id, run_id: d.run_id, dispatch_id: d.dispatch_id };
}

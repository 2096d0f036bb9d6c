/**
 * Model comparison of fused vs sequential: random operation sequences run on two stores of the same
 * backend, one answering every claim+start / result+ack with the fused operation, the other with the
 * sequential pair. Every outcome (value or error) and the whole state after each step must match.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FusedMailboxStore } from '../../src/contract/fused.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import {
  BACKENDS,
  TokenBook,
  claimDispatchThenStart,
  claimThenStart,
  completeThenClaimNext,
  outcome,
  plainNext,
  resultThenAck,
  snapshot,
} from './support.js';

const THREADS = ['t0', 't1'];
const DISPATCHES = ['d0', 'd1', 'd2', 'd3', 'd4'];
const SEQUENCES = Number(process.env.FUSED_MODEL_SEQUENCES ?? 100);

type Op =
  | { op: 'enqueue'; id: string; thread: string; priority: number; delay: number; max: number }
  | { op: 'claimAndStart'; thread: string; lease: number }
  | { op: 'claimDispatchAndStart'; id: string; lease: number }
  | { op: 'completeAndAck'; id: string; token: number; matchRun: boolean }
  /** completeAndAck on the thread's Claimed dispatch with its own token (the Mailbox's call). */
  | { op: 'completeActive'; thread: string; matchRun: boolean }
  /** completeAndClaimNext on the thread's Claimed dispatch, claiming next on `next` (the Mailbox's call). */
  | { op: 'completeActiveAndClaim'; thread: string; next: string; matchRun: boolean; lease: number }
  | { op: 'nack'; id: string; token: number; retryIn: number }
  | { op: 'interrupt'; thread: string }
  | { op: 'cancel'; id: string }
  | { op: 'reclaim' };

const id = fc.constantFrom(...DISPATCHES);
const thread = fc.constantFrom(...THREADS);
/** Index into the tokens a store minted so far (-1 and unminted indexes = a foreign token). */
const token = fc.integer({ min: -1, max: 5 });
const lease = fc.constantFrom(100, 1000);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('enqueue' as const),
      id,
      thread,
      priority: fc.constantFrom(0, 7, 255),
      delay: fc.constantFrom(0, 0, 300),
      max: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('claimAndStart' as const), thread, lease }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('claimDispatchAndStart' as const), id, lease }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('completeAndAck' as const), id, token, matchRun: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('completeActive' as const), thread, matchRun: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('completeActiveAndClaim' as const),
      thread,
      next: thread,
      matchRun: fc.boolean(),
      lease,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('nack' as const), id, token, retryIn: fc.constantFrom(0, 200) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('interrupt' as const), thread }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), id }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reclaim' as const) }) },
);

const programArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), opArb), {
  minLength: 5,
  maxLength: 30,
});

/**
 * The thread's Claimed dispatch as the Mailbox completes it: its id, its own token and the run ids of its
 * result (`matchRun` false = a mismatching run_id); null when the thread has no claim.
 */
async function activeClaim(
  s: MailboxStore,
  thread: string,
  matchRun: boolean,
  instance: string,
): Promise<{ did: string; tok: string; base: { run_id: string; dispatch_instance_id: string } } | null> {
  const [active] = await s.listDispatches(thread, ['Claimed'], 1, 0);
  if (!active) return null;
  return {
    did: active.dispatch_id,
    tok: active.claim_token ?? 'no-token',
    base: {
      run_id: matchRun ? active.run_id : 'other-run',
      dispatch_instance_id: active.dispatch_instance_id ?? instance,
    },
  };
}

/** One step; `fused` picks the fused operation or the sequential pair for the three fused cases. */
function apply(
  store: FusedMailboxStore,
  fused: boolean,
  op: Op,
  now: number,
  book: TokenBook,
): Promise<unknown> {
  const s: MailboxStore = store;
  const instance = `inst-${now}`;
  return outcome(async () => {
    switch (op.op) {
      case 'enqueue':
        return s.enqueue(
          queuedDispatch({
            dispatch_id: op.id,
            thread_id: op.thread,
            run_id: `run-${op.id}`,
            created_at: now,
            available_at: now + op.delay,
            priority: op.priority,
            max_attempts: op.max,
          }),
        );
      case 'claimAndStart':
        return fused
          ? store.claimAndStart(op.thread, 'c1', op.lease, now, instance)
          : claimThenStart(s, op.thread, 'c1', op.lease, now, instance);
      case 'claimDispatchAndStart':
        return fused
          ? store.claimDispatchAndStart(op.id, 'c1', op.lease, now, instance)
          : claimDispatchThenStart(s, op.id, 'c1', op.lease, now, instance);
      case 'completeAndAck': {
        const result = {
          run_id: op.matchRun ? `run-${op.id}` : 'other-run',
          dispatch_instance_id: instance,
          status: 'done' as const,
          termination: { type: 'natural_end' as const },
          response: 'ok',
        };
        const tok = book.pick(op.token);
        return fused
          ? store.completeAndAck(op.id, tok, result, now)
          : resultThenAck(s, op.id, tok, result, now);
      }
      case 'completeActive': {
        const active = await activeClaim(s, op.thread, op.matchRun, instance);
        if (!active) return 'no active claim';
        const { did, tok, base } = active;
        const result = {
          ...base,
          status: 'waiting' as const,
          termination: { type: 'suspended' as const },
          error: 'paused',
        };
        return fused ? store.completeAndAck(did, tok, result, now) : resultThenAck(s, did, tok, result, now);
      }
      case 'completeActiveAndClaim': {
        const active = await activeClaim(s, op.thread, op.matchRun, instance);
        if (!active) return 'no active claim';
        const { did, tok, base } = active;
        const result = {
          ...base,
          status: 'done' as const,
          termination: { type: 'natural_end' as const },
          response: 'ok',
        };
        const next = { threadId: op.next, consumerId: 'c1', leaseMs: op.lease, dispatchInstanceId: instance };
        return plainNext(
          fused
            ? await store.completeAndClaimNext(did, tok, result, now, next)
            : await completeThenClaimNext(s, did, tok, result, now, next),
        );
      }
      case 'nack':
        return s.nack(op.id, book.pick(op.token), now + op.retryIn, 'transient', now);
      case 'interrupt':
        return s.interrupt(op.thread, now);
      case 'cancel':
        return s.cancel(op.id, now);
      case 'reclaim': {
        const reclaimed = await s.reclaimExpiredLeases(now, 100);
        return [...reclaimed].sort((a, b) => a.dispatch_id.localeCompare(b.dispatch_id));
      }
    }
  }, book);
}

describe.each(BACKENDS)('fused vs sequential model on $name', (backend) => {
  it(`agrees on ${SEQUENCES} random operation sequences`, async () => {
    await fc.assert(
      fc.asyncProperty(programArb, async (program) => {
        const fusedFx = await backend.open();
        const seqFx = await backend.open();
        const fusedBook = new TokenBook();
        const seqBook = new TokenBook();
        try {
          let now = 1000;
          for (const [advance, op] of program) {
            now += advance;
            const want = await apply(seqFx.store, false, op, now, seqBook);
            const got = await apply(fusedFx.store, true, op, now, fusedBook);
            expect(got, `${op.op} at ${now}: ${JSON.stringify(op)}`).toEqual(want);
            expect(await snapshot(fusedFx.store, THREADS, fusedBook), `state after ${op.op}`).toEqual(
              await snapshot(seqFx.store, THREADS, seqBook),
            );
          }
        } finally {
          await fusedFx.cleanup();
          await seqFx.cleanup();
        }
      }),
      { numRuns: SEQUENCES },
    );
  }, 300_000);
});

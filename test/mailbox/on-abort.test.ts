/**
 * `ExecutorContext.onAbort` / `aborted`: the same aborts as `ctx.signal`, with the same reason, without the
 * executor ever reading the signal; a listener removed before the abort is not called, one added after it is
 * called at once, and one that throws is logged without stopping the abort or the other listeners.
 */
import { describe, expect, it } from 'vitest';
import { Mailbox, RunAbortedError } from '../../src/mailbox/index.js';
import type { ExecutorContext } from '../../src/mailbox/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { eventually } from './wait.js';

interface Seen {
  reasons: string[];
  removedCalled: boolean;
  lateReason: string | null;
  abortedBefore: boolean;
  abortedAfter: boolean;
}

/** An executor that waits for its abort through onAbort only, recording what it saw. */
function watchingExecutor(seen: Seen, started: () => void) {
  return async (ctx: ExecutorContext) => {
    seen.abortedBefore = ctx.aborted;
    // The functions work taken off the context, too.
    const { onAbort, setWaiting } = ctx;
    setWaiting(false);
    const removed = onAbort(() => (seen.removedCalled = true));
    removed();
    ctx.onAbort(() => {
      throw new Error('listener failure');
    });
    await new Promise<void>((resolve) => {
      ctx.onAbort((reason) => {
        seen.reasons.push(reason.reason);
        expect(reason).toBeInstanceOf(RunAbortedError);
        resolve();
      });
      started();
    });
    seen.abortedAfter = ctx.aborted;
    ctx.onAbort((reason) => (seen.lateReason = reason.reason));
    return { kind: 'completed' as const };
  };
}

describe('ExecutorContext.onAbort', () => {
  it.each(['cancel', 'interrupt'] as const)('reports a %s like the signal would', async (how) => {
    const store = new MemoryMailboxStore();
    const seen: Seen = {
      reasons: [],
      removedCalled: false,
      lateReason: null,
      abortedBefore: true,
      abortedAfter: false,
    };
    let running = false;
    const errors: string[] = [];
    const mailbox = new Mailbox({
      store,
      consumerId: 'n1',
      executor: watchingExecutor(seen, () => (running = true)),
      logger: { error: (msg) => errors.push(msg) },
    });
    await mailbox.start();
    try {
      const { dispatchId } = await mailbox.submitBackground({ threadId: `t-${how}` });
      await eventually('the run to start', () => running);
      if (how === 'cancel') expect(await mailbox.cancel(dispatchId)).toBe(true);
      else expect((await mailbox.interrupt(`t-${how}`)).activeCancelled).toBe(true);
      // Cancelled, or Superseded when the interrupt's new epoch got to the record first.
      await eventually('the run to end', async () => {
        const d = await store.loadDispatch(dispatchId);
        return d !== null && (d.status === 'Cancelled' || d.status === 'Superseded' || d.status === 'Acked');
      });
      expect(seen).toEqual({
        reasons: [how],
        removedCalled: false,
        lateReason: how,
        abortedBefore: false,
        abortedAfter: true,
      });
      expect(errors).toContain('an onAbort listener threw');
    } finally {
      await mailbox.stop();
      await store.close();
    }
  });

  it('never fires for a run that ends normally', async () => {
    const store = new MemoryMailboxStore();
    let fired = 0;
    const completed: string[] = [];
    const mailbox = new Mailbox({
      store,
      consumerId: 'n1',
      executor: async (ctx) => {
        ctx.onAbort(() => fired++);
        return { kind: 'completed' };
      },
    });
    mailbox.on('completed', (d) => completed.push(d.dispatch_id));
    await mailbox.start();
    try {
      const { dispatchId } = await mailbox.submitBackground({ threadId: 't-normal' });
      await eventually('the run to complete', () => completed.includes(dispatchId));
    } finally {
      await mailbox.stop();
      await store.close();
    }
    expect(fired).toBe(0);
  });
});

/**
 * `Mailbox.retryDeadLetter`: a dead letter goes back to the queue and runs again on this node.
 */
import { describe, expect, it } from 'vitest';
import { Mailbox } from '../../src/mailbox/index.js';
import type { ExecutorOutcome } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { eventually } from '../mailbox/wait.js';

describe('Mailbox.retryDeadLetter', () => {
  it('requeues a dead letter and runs it; refuses what is not dead', async () => {
    const store = new MemoryMailboxStore();
    let broken = true;
    const finished: string[] = [];
    const mailbox = new Mailbox({
      store,
      executor: async (): Promise<ExecutorOutcome> =>
        broken ? { kind: 'fail', error: 'tool missing' } : { kind: 'completed', response: 'ok' },
      config: { sweepIntervalMs: 3_600_000, gcIntervalMs: 3_600_000 },
    });
    mailbox.on('deadLettered', (d) => finished.push(`dead:${d.dispatch_id}`));
    mailbox.on('completed', (d) => finished.push(`done:${d.dispatch_id}`));
    await mailbox.start();
    try {
      const { dispatchId } = await mailbox.submitBackground({ threadId: 't1' });
      await eventually('the dead letter', () => finished.includes(`dead:${dispatchId}`) || undefined);
      await expect(mailbox.retryDeadLetter('nope')).rejects.toMatchObject({ kind: 'NotFound' });

      broken = false;
      const requeued = await mailbox.retryDeadLetter(dispatchId, { resetAttempts: true });
      expect(requeued).toMatchObject({ status: 'Queued', attempt_count: 0, last_error: 'tool missing' });
      await eventually('the second run', () => finished.includes(`done:${dispatchId}`) || undefined);
      expect(await store.loadDispatch(dispatchId)).toMatchObject({ status: 'Acked', run_response: 'ok' });
      await expect(mailbox.retryDeadLetter(dispatchId)).rejects.toMatchObject({ kind: 'Validation' });
    } finally {
      await mailbox.stop();
      await store.close();
    }
    await expect(mailbox.retryDeadLetter('any')).rejects.toThrow();
  });
});

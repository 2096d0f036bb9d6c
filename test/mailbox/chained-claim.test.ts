/**
 * What follows a run whose completion chained a claim of the thread's next dispatch (`completeAndClaimNext`)
 * and found nothing: no second claim of the thread, unless work was signalled to the node while the run was
 * still on it. The store has no dispatch signals and the idle poll is an hour away, so a dispatch starts only
 * through the Mailbox's own wake-ups: what these tests see is that bookkeeping and nothing else.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Mailbox } from '../../src/mailbox/index.js';
import type { Executor } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { loadStatus } from './harness.js';
import { eventually } from './wait.js';

const HOUR = 3_600_000;

/** A gate the test opens; `wait()` resolves once it is open. */
function gate(): { wait(): Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { wait: () => opened, open };
}

/** Counts the claim calls per thread that reach the store (both claim paths of the Mailbox). */
function countClaims(store: MemoryMailboxStore): Map<string, number> {
  const claims = new Map<string, number>();
  const note = (threadId: string): void => {
    claims.set(threadId, (claims.get(threadId) ?? 0) + 1);
  };
  const claimAndStart = store.claimAndStart.bind(store);
  store.claimAndStart = (threadId, ...rest) => {
    note(threadId);
    return claimAndStart(threadId, ...rest);
  };
  const claim = store.claim.bind(store);
  store.claim = (threadId, ...rest) => {
    note(threadId);
    return claim(threadId, ...rest);
  };
  return claims;
}

describe('after a run whose chained claim found its thread empty', () => {
  const mailboxes: Mailbox[] = [];
  afterEach(async () => {
    await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  });

  function open(store: MemoryMailboxStore, executor: Executor): Mailbox {
    const mailbox = new Mailbox({
      store,
      executor,
      consumerId: 'node',
      logger: {},
      config: { idlePollIntervalMs: HOUR, sweepIntervalMs: HOUR },
    });
    mailboxes.push(mailbox);
    return mailbox;
  }

  it('claims the thread once per dispatch: the completion’s own claim was the last look', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const claims = countClaims(store);
    const mailbox = open(store, async () => ({ kind: 'completed' }));
    await mailbox.start();
    for (let i = 0; i < 3; i++) {
      const { dispatchId } = await mailbox.submitBackground({ threadId: 'drained', runId: `run-${i}` });
      await loadStatus(store, dispatchId, 'Acked');
      // The run is gone from the node once its end is handled (a follow-up claim would be sent by then).
      await eventually('no active run', () => mailbox.activeRuns === 0);
    }
    expect(claims.get('drained')).toBe(3);
  });

  it('claims again when work was submitted here while the completion was in flight', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const claims = countClaims(store);
    // The first completion commits (finding nothing to chain), then its answer is held back.
    const answerHeld = gate();
    const committed = gate();
    const completeAndClaimNext = store.completeAndClaimNext.bind(store);
    let held = false;
    store.completeAndClaimNext = async (...a) => {
      const done = await completeAndClaimNext(...a);
      if (!held) {
        held = true;
        committed.open();
        await answerHeld.wait();
      }
      return done;
    };
    const mailbox = open(store, async () => ({ kind: 'completed' }));
    await mailbox.start();
    const first = await mailbox.submitBackground({ threadId: 'busy', runId: 'first' });
    await committed.wait();
    expect((await store.loadDispatch(first.dispatchId))?.status).toBe('Acked');
    // The run is still on the node: the new dispatch queues and the worker notes it.
    const second = await mailbox.submitBackground({ threadId: 'busy', runId: 'second' });
    expect(second.status).toBe('Queued');
    answerHeld.open();
    await loadStatus(store, second.dispatchId, 'Acked', 5_000);
    // One claim for each submit (the second found the thread busy and did not reach the store) and the one
    // after the first run that took the second dispatch.
    expect(claims.get('busy')).toBe(2);
  });
});

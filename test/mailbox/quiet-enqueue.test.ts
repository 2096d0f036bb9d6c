/**
 * With `quietClaimedThreads`, a dispatch enqueued while its thread holds a claim gets no signal: whoever ends the claim takes the
 * thread's next dispatch. These tests make sure the Mailbox does so on the paths that end a claim without a
 * run of its own: the store's sweeper is an hour away, so nothing else would start the queued dispatch.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { loadStatus } from './harness.js';
import { eventually } from './wait.js';

const HOUR = 3_600_000;

describe('work enqueued behind a claim (no signal of its own)', () => {
  const mailboxes: Mailbox[] = [];
  const stores: MemoryMailboxStore[] = [];
  afterEach(async () => {
    await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  function setUp(): { store: MemoryMailboxStore; mailbox: Mailbox } {
    const store = new MemoryMailboxStore({
      signals: true,
      sweepIntervalMs: HOUR,
      republishAfterMs: HOUR,
      quietClaimedThreads: true,
    });
    stores.push(store);
    const mailbox = new Mailbox({
      store,
      executor: async () => ({ kind: 'completed' }),
      consumerId: 'node',
      logger: {},
      // The Mailbox's own sweep (lease reclaim) runs often; nothing polls idle threads.
      config: { idlePollIntervalMs: HOUR, sweepIntervalMs: 50 },
    });
    mailboxes.push(mailbox);
    return { store, mailbox };
  }

  it('runs once the claim ahead of it expires and is dead-lettered by the sweep', async () => {
    const { store, mailbox } = setUp();
    await mailbox.start();
    const now = Date.now();
    await store.enqueue(
      queuedDispatch({
        dispatch_id: 'd-crashed',
        thread_id: 't',
        run_id: 'r1',
        created_at: now,
        max_attempts: 1,
      }),
    );
    // Another consumer claims it and never comes back: its lease runs out, its last attempt with it.
    const held = await store.claimDispatch('d-crashed', 'crashed-node', 300, Date.now());
    expect(held?.status).toBe('Claimed');
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'd-next', thread_id: 't', run_id: 'r2', created_at: now }),
    );
    await loadStatus(store, 'd-crashed', 'DeadLetter');
    await loadStatus(store, 'd-next', 'Acked');
  });

  it('runs once the claim ahead of it expires and is requeued by the sweep', async () => {
    const { store, mailbox } = setUp();
    await mailbox.start();
    const now = Date.now();
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'd-first', thread_id: 't', run_id: 'r1', created_at: now }),
    );
    await store.claimDispatch('d-first', 'crashed-node', 300, Date.now());
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'd-second', thread_id: 't', run_id: 'r2', created_at: now }),
    );
    await loadStatus(store, 'd-first', 'Acked');
    await loadStatus(store, 'd-second', 'Acked');
    await eventually('no active run', () => mailbox.activeRuns === 0);
  });

  it('runs on another node when the run ahead of it ends while its Mailbox stops', async () => {
    // Two nodes of their own: the set-up's node is not used.
    const { store, mailbox: unused } = setUp();
    await unused.stop();
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const ranOnOther: string[] = [];
    const other = new Mailbox({
      store,
      executor: async (ctx) => {
        ranOnOther.push(ctx.dispatch.dispatch_id);
        return { kind: 'completed' };
      },
      consumerId: 'other',
      logger: {},
      config: { idlePollIntervalMs: HOUR, sweepIntervalMs: 50 },
    });
    mailboxes.push(other);
    // The stopping node's run lasts until the test lets it finish, inside the stop's grace period.
    const slow = new Mailbox({
      store,
      executor: async () => {
        await finished;
        return { kind: 'completed' };
      },
      consumerId: 'slow',
      logger: {},
      config: { idlePollIntervalMs: HOUR, sweepIntervalMs: 50, stopGraceMs: 30_000 },
    });
    mailboxes.push(slow);
    await slow.start();
    const now = Date.now();
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'd-first', thread_id: 't', run_id: 'r1', created_at: now }),
    );
    await loadStatus(store, 'd-first', 'Claimed');
    await eventually('the slow run started', () => slow.activeRuns === 1);
    // Enqueued behind the claim: no signal of its own.
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'd-second', thread_id: 't', run_id: 'r2', created_at: now }),
    );
    await other.start();
    const stopped = slow.stop();
    finish();
    await stopped;
    await loadStatus(store, 'd-first', 'Acked');
    // Neither the stopping node (it claims nothing more) nor a sweep (an hour away) starts it: the hand-off
    // signal of the claim that ended does, and the other node runs it.
    await loadStatus(store, 'd-second', 'Acked');
    expect(ranOnOther).toEqual(['d-second']);
  });
});

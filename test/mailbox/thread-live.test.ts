/**
 * The thread subscription a node keeps for the runs of a thread it runs (stores with `openThreadRuns`, the
 * Redis store with NATS): taken as the claim of an idle thread is sent, so that its round trip overlaps the
 * claim's, shared by the run the claim starts, and dropped when the claim finds nothing (without a linger
 * period) or once it lingered `liveSubscriptionLingerMs` unused. A memory store stands in, with a counting
 * `openThreadRuns` whose subscription serves no run itself (each run then opens its own channel, as a NATS
 * subscription does for targets it cannot serve).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { ThreadRunsLive } from '../../src/live/channel.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { loadStatus } from './harness.js';
import { eventually } from './wait.js';

const HOUR = 3_600_000;

interface Subscriptions {
  opened: string[];
  closed: string[];
}

function withThreadRuns(store: MemoryMailboxStore): Subscriptions {
  const subs: Subscriptions = { opened: [], closed: [] };
  const target = store as MemoryMailboxStore & {
    openThreadRuns?: (threadId: string, holdsThread: () => boolean) => Promise<ThreadRunsLive | null>;
  };
  target.openThreadRuns = (threadId) => {
    subs.opened.push(threadId);
    let closed = false;
    return Promise.resolve({
      openRun: () => null,
      get closed() {
        return closed;
      },
      close: () => {
        if (!closed) subs.closed.push(threadId);
        closed = true;
        return Promise.resolve();
      },
    });
  };
  return subs;
}

const count = (list: string[], threadId: string): number => list.filter((t) => t === threadId).length;

describe('the thread subscription of a claim', () => {
  const mailboxes: Mailbox[] = [];
  afterEach(async () => {
    await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  });

  function open(store: MemoryMailboxStore, idlePollIntervalMs = HOUR, liveSubscriptionLingerMs = 0): Mailbox {
    const mailbox = new Mailbox({
      store,
      executor: async () => ({ kind: 'completed' }),
      consumerId: 'node',
      logger: {},
      config: { idlePollIntervalMs, sweepIntervalMs: HOUR, liveSubscriptionLingerMs },
    });
    mailboxes.push(mailbox);
    return mailbox;
  }

  it('is being taken while the claim is in flight, and the run it starts uses it', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const subs = withThreadRuns(store);
    const seenAtClaim: number[] = [];
    const claimAndStart = store.claimAndStart.bind(store);
    store.claimAndStart = (threadId, ...rest) => {
      seenAtClaim.push(count(subs.opened, threadId));
      return claimAndStart(threadId, ...rest);
    };
    const mailbox = open(store);
    await mailbox.start();
    const { dispatchId } = await mailbox.submitBackground({ threadId: 'busy', runId: 'r1' });
    await loadStatus(store, dispatchId, 'Acked');
    // The completion found the thread empty: the subscription goes with the run.
    await eventually('released', () => count(subs.closed, 'busy') === 1);
    expect(seenAtClaim).toEqual([1]);
    expect(count(subs.opened, 'busy')).toBe(1);
  });

  it('is dropped when the claim finds nothing', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const subs = withThreadRuns(store);
    // Queued but not available for an hour: the idle poll tries the thread and its claim finds nothing.
    const now = Date.now();
    await store.enqueue(
      queuedDispatch({
        dispatch_id: 'd-later',
        thread_id: 'later',
        run_id: 'r',
        created_at: now,
        available_at: now + HOUR,
      }),
    );
    const mailbox = open(store, 20);
    await mailbox.start();
    // (A claim and its release take a few microtasks on the memory store: between two polls none is open.)
    await eventually(
      'two claims that found nothing, each subscription dropped',
      () => count(subs.opened, 'later') >= 2 && count(subs.closed, 'later') === count(subs.opened, 'later'),
    );
    expect(mailbox.activeRuns).toBe(0);
    expect((await store.loadDispatch('d-later'))?.status).toBe('Queued');
  });

  it("lingers after the thread's last run here, and the thread's next dispatch runs on it", async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const subs = withThreadRuns(store);
    const mailbox = open(store, HOUR, HOUR);
    await mailbox.start();
    const first = await mailbox.submitBackground({ threadId: 'steady', runId: 'r1' });
    await loadStatus(store, first.dispatchId, 'Acked');
    const second = await mailbox.submitBackground({ threadId: 'steady', runId: 'r2' });
    await loadStatus(store, second.dispatchId, 'Acked');
    expect(count(subs.opened, 'steady')).toBe(1);
    expect(count(subs.closed, 'steady')).toBe(0);
    // Stopping drops what lingers.
    await mailbox.stop();
    expect(count(subs.closed, 'steady')).toBe(1);
  });

  it('is dropped once it lingered the configured time unused', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    const subs = withThreadRuns(store);
    const mailbox = open(store, HOUR, 100);
    await mailbox.start();
    const { dispatchId } = await mailbox.submitBackground({ threadId: 'once', runId: 'r1' });
    await loadStatus(store, dispatchId, 'Acked');
    await eventually('the lingering subscription dropped', () => count(subs.closed, 'once') === 1);
    expect(count(subs.opened, 'once')).toBe(1);
  });
});

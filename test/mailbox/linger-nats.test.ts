/**
 * A thread's live subscription lingering on real NATS (Redis store, Redis Streams signals): the thread's next
 * run, submitted after the last one ended, runs on the same subscription and takes its commands; a command to
 * an earlier run of the thread while the current one holds it is answered `NoSubscriber` at once; once the
 * thread is idle again, the lingering subscription answers nothing (a command to the finished run times out
 * into `NoSubscriber`, never `Delivered`), and stopping the Mailbox drops it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/contract/types.js';
import type { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore, type RedisMailboxStore } from '../../src/redis/index.js';
import { natsUrl, redisUrl } from '../support/servers.js';
import { openFixture, type RedisFixture } from '../redis/helpers.js';
import { Recorder, behaviours, loadStatus, newMailbox } from './harness.js';
import { eventually } from './wait.js';

const HOUR = 3_600_000;
const REQUEST_TIMEOUT_MS = 1500;

const fixtures: RedisFixture[] = [];
const mailboxes: Mailbox[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  await Promise.all(closers.splice(0).map((close) => close()));
  await Promise.all(fixtures.splice(0).map((f) => f.cleanup()));
});

/** Count the thread subscriptions the store opens and closes. */
function countThreadSubscriptions(store: RedisMailboxStore): { opened: number; closed: number } {
  const seen = { opened: 0, closed: 0 };
  const openThreadRuns = store.openThreadRuns.bind(store);
  store.openThreadRuns = async (threadId, holdsThread) => {
    seen.opened++;
    const runs = await openThreadRuns(threadId, holdsThread);
    if (runs) {
      const close = runs.close.bind(runs);
      runs.close = () => close().then(() => void seen.closed++);
    }
    return runs;
  };
  return seen;
}

describe('a lingering thread subscription on NATS', () => {
  it("serves the thread's next run, answers nothing while idle, and goes when the Mailbox stops", async () => {
    const nats = await natsUrl();
    const node = await openFixture('linger-node', { signals: 'redis-streams', nats });
    fixtures.push(node);
    const producer = await createMailboxStore({
      redis: await redisUrl(),
      nats,
      namespace: node.namespace,
      signals: 'redis-streams',
      liveRequestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    closers.push(() => producer.close());
    const subs = countThreadSubscriptions(node.store);
    const recorder = new Recorder().on('second', behaviours.untilCommanded());
    const mailbox = newMailbox(
      node.store,
      recorder,
      'node',
      { sweepIntervalMs: HOUR, liveSubscriptionLingerMs: HOUR },
      { logger: {} },
    );
    mailboxes.push(mailbox);
    await mailbox.start();

    const first = await mailbox.submitBackground({ threadId: 'steady', runId: 'first' });
    await loadStatus(node.store, first.dispatchId, 'Acked');
    const firstTarget = { thread_id: 'steady', run_id: 'first', dispatch_id: first.dispatchId };

    const second = await mailbox.submitBackground({ threadId: 'steady', runId: 'second' });
    const secondTarget = { thread_id: 'steady', run_id: 'second', dispatch_id: second.dispatchId };
    // The recorder reads a run's commands from its start.
    const secondRun = await eventually('the second run to start', () => recorder.ofRun('second')[0]);
    // The current run holds the thread: a command to the earlier run is refused at once.
    const started = performance.now();
    expect(await producer.deliverLiveTo(firstTarget, 'Cancel')).toBe('NoSubscriber');
    expect(performance.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS);
    const msg: Message = { id: 'm-1', role: 'user', content: [{ type: 'text', text: 'hello' }] };
    expect(await producer.deliverLiveTo(secondTarget, { Messages: [msg] })).toBe('Delivered');
    await loadStatus(node.store, second.dispatchId, 'Acked');
    expect(secondRun.commands).toEqual([{ Messages: [msg] }]);
    // Both runs on one subscription, which is still there.
    expect(subs).toEqual({ opened: 1, closed: 0 });

    // Idle: the lingering subscription is still there (the request waits out its timeout instead of being
    // refused by the server) and takes no command for the finished run.
    const asked = performance.now();
    expect(await producer.deliverLiveTo(secondTarget, { Messages: [msg] })).toBe('NoSubscriber');
    expect(performance.now() - asked).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(secondRun.commands).toHaveLength(1);
    expect(subs).toEqual({ opened: 1, closed: 0 });

    await mailbox.stop();
    expect(subs).toEqual({ opened: 1, closed: 1 });
    // Gone from the server too: nobody subscribes, so the answer comes at once (a request racing the UNSUB
    // may still wait out its timeout once: ask again then).
    await eventually('no subscriber left', async () => {
      const t0 = performance.now();
      const outcome = await producer.deliverLiveTo(secondTarget, 'Cancel');
      return outcome === 'NoSubscriber' && performance.now() - t0 < REQUEST_TIMEOUT_MS;
    });
  });
});

/**
 * Without live commands (a Redis store without NATS) an interrupt made on one node reaches a run on another
 * through the epoch watch (`epochPollIntervalMs`), long before the run's next lease renewal: the run is
 * aborted with `interrupt`, its dispatch is superseded, and a foreground submit waiting for the thread runs.
 * The lease renewal interval here (20 s) is far beyond every wait, so only the watch can have done it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore, type RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl } from '../support/servers.js';
import { openFixture, type RedisFixture } from '../redis/helpers.js';
import { Recorder, behaviours, collectEvents, loadStatus, newMailbox } from './harness.js';
import { eventually } from './wait.js';

const SLOW_RENEWAL = { leaseMs: 60_000, leaseRenewalIntervalMs: 20_000, sweepIntervalMs: 3_600_000 };

const fixtures: RedisFixture[] = [];
const stores: RedisMailboxStore[] = [];
const mailboxes: Mailbox[] = [];
afterEach(async () => {
  await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await Promise.all(fixtures.splice(0).map((f) => f.cleanup()));
});

/** Two nodes on one namespace, each with its own store (connection), Redis Streams signals and no NATS. */
async function twoNodes(
  label: string,
  recorder: Recorder,
  epochPollIntervalMs: number,
): Promise<{ a: Mailbox; b: Mailbox; fx: RedisFixture; storeB: RedisMailboxStore }> {
  const fx = await openFixture(label, { signals: 'redis-streams' });
  fixtures.push(fx);
  const other = await createMailboxStore({
    redis: await redisUrl(),
    namespace: fx.namespace,
    signals: 'redis-streams',
  });
  stores.push(other);
  expect(fx.store.liveCommands).toBe(false);
  const config = { ...SLOW_RENEWAL, epochPollIntervalMs };
  const a = newMailbox(fx.store, recorder, 'node-a', config, { logger: {} });
  const b = newMailbox(other, recorder, 'node-b', config, { logger: {} });
  mailboxes.push(a, b);
  return { a, b, fx, storeB: other };
}

/**
 * Start node-b alone and run `held` (a run that lasts until aborted) on `threadId` there, then start node-a:
 * the run is node-b's, and only node-b's watch can end it.
 */
async function holdOnB(
  { a, b }: { a: Mailbox; b: Mailbox },
  recorder: Recorder,
  threadId: string,
): Promise<{ dispatchId: string }> {
  await b.start();
  const held = await b.submitBackground({ threadId, runId: 'held' });
  await eventually('the held run to start on node-b', () => recorder.ofRun('held')[0]?.consumer === 'node-b');
  await a.start();
  return held;
}

describe('the epoch watch (no live commands)', () => {
  it('an interrupt from another node aborts the run with `interrupt`; its dispatch is superseded', async () => {
    const recorder = new Recorder().on('held', behaviours.untilAborted(30_000));
    const { a, b, fx } = await twoNodes('epoch-watch-irq', recorder, 50);
    const events = collectEvents(b);
    const held = await holdOnB({ a, b }, recorder, 'w');

    const result = await a.interrupt('w');
    // No live command can carry the Cancel: the interrupt itself does not know that the run stops.
    expect(result).toMatchObject({ supersededCount: 0, activeCancelled: false });
    await eventually('the held run to end', () => recorder.ofRun('held')[0]!.end !== null, 10_000);
    expect(recorder.ofRun('held')[0]!.abortReason).toBe('interrupt');
    await loadStatus(fx.store, held.dispatchId, 'Superseded');
    await eventually('the superseded event on node-b', () =>
      events.some((e) => e.name === 'superseded' && e.dispatch.dispatch_id === held.dispatchId),
    );
  });

  it('a foreground submit on another node interrupts the running run and runs once it is released', async () => {
    const recorder = new Recorder().on('held', behaviours.untilAborted(30_000));
    const { a, b, fx } = await twoNodes('epoch-watch-submit', recorder, 50);
    const held = await holdOnB({ a, b }, recorder, 'w2');

    // submit() waits at most remoteCancelWaitMs (4 s here) for the thread: only the watch frees it in time.
    const next = await a.submit({ threadId: 'w2', runId: 'next' });
    expect(recorder.ofRun('held')[0]!.abortReason).toBe('interrupt');
    await loadStatus(fx.store, held.dispatchId, 'Superseded');
    const acked = await loadStatus(fx.store, next.dispatchId, 'Acked');
    expect(acked.termination).toEqual({ type: 'natural_end' });
    expect(recorder.ofRun('next')).toHaveLength(1);
  });

  it('runs on the node that was not interrupted go on', async () => {
    const recorder = new Recorder()
      .on('held', behaviours.untilAborted(30_000))
      .on('other', behaviours.untilAborted(30_000));
    const { a, b, storeB } = await twoNodes('epoch-watch-others', recorder, 50);
    await b.start();
    await b.submitBackground({ threadId: 'w3', runId: 'held' });
    await b.submitBackground({ threadId: 'w4', runId: 'other' });
    await eventually(
      'both runs to start',
      () => recorder.ofRun('held').length + recorder.ofRun('other').length === 2,
    );
    await a.start();
    await a.interrupt('w3');
    await eventually('the interrupted run to end', () => recorder.ofRun('held')[0]!.end !== null, 10_000);
    // The other thread's epoch did not move: its run is still going after several more reads of the watch.
    await epochReads(storeB, 4);
    expect(recorder.ofRun('other')[0]!.end).toBeNull();
    expect(recorder.ofRun('other')[0]!.abortReason).toBeNull();
  });
});

/**
 * Wait until node-b's store has answered `times` more epoch reads (the watch's, one per running run per
 * interval), so a run that should not be aborted had every chance to be.
 */
async function epochReads(store: RedisMailboxStore, times: number): Promise<void> {
  let reads = 0;
  const original = store.currentDispatchEpoch.bind(store);
  store.currentDispatchEpoch = (threadId: string) => {
    reads++;
    return original(threadId);
  };
  try {
    await eventually(`${times} epoch reads`, () => reads >= times, 10_000);
  } finally {
    store.currentDispatchEpoch = original;
  }
}

/**
 * Without live commands (a Redis store without NATS) an interrupt made on one node reaches a run on another
 * through the epoch watch (`epochPollIntervalMs`), long before the run's next lease renewal: the run is
 * aborted with `interrupt`, its dispatch is superseded, and a foreground submit waiting for the thread runs.
 * A `cancel` from another node is recorded in the store (a cancel request for the run's claim) and reaches
 * the run the same way, aborting it with `cancel`. The lease renewal interval here (20 s) is far beyond
 * every wait, so only the watch can have done it; without the watch, the renewal finds the cancel request.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Mailbox } from '../../src/mailbox/index.js';
import type { MailboxConfig } from '../../src/mailbox/types.js';
import { createMailboxStore, type RedisMailboxStore } from '../../src/redis/index.js';
import { natsUrl, redisUrl } from '../support/servers.js';
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

/**
 * Two nodes on one namespace, each with its own store (connection), Redis Streams signals and no NATS
 * (unless `nats` is given: then both stores have live commands).
 */
async function twoNodes(
  label: string,
  recorder: Recorder,
  epochPollIntervalMs: number,
  overrides: Partial<MailboxConfig> = {},
  nats?: string,
): Promise<{ a: Mailbox; b: Mailbox; fx: RedisFixture; storeB: RedisMailboxStore }> {
  const live = nats === undefined ? {} : { nats };
  const fx = await openFixture(label, { signals: 'redis-streams', ...live });
  fixtures.push(fx);
  const other = await createMailboxStore({
    redis: await redisUrl(),
    namespace: fx.namespace,
    signals: 'redis-streams',
    ...live,
  });
  stores.push(other);
  expect(fx.store.liveCommands).toBe(nats !== undefined);
  const config = { ...SLOW_RENEWAL, epochPollIntervalMs, ...overrides };
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

  it('a cancel from another node (dispatch, run or thread id) aborts the run with `cancel`', async () => {
    const recorder = new Recorder()
      .on('by-dispatch', behaviours.untilAborted(30_000))
      .on('by-run', behaviours.untilAborted(30_000))
      .on('by-thread', behaviours.untilAborted(30_000));
    const { a, b, fx } = await twoNodes('epoch-watch-cancel', recorder, 50);
    const events = collectEvents(b);
    await b.start();
    const held = [
      await b.submitBackground({ threadId: 'c1', runId: 'by-dispatch' }),
      await b.submitBackground({ threadId: 'c2', runId: 'by-run' }),
      await b.submitBackground({ threadId: 'c3', runId: 'by-thread' }),
    ];
    await eventually('the three runs to start on node-b', () =>
      held.every((h) => recorder.ofRun(h.runId)[0]?.consumer === 'node-b'),
    );
    await a.start();

    // Node-a holds none of these runs and no live command reaches node-b: the cancels are recorded.
    expect(await a.cancel(held[0]!.dispatchId)).toBe(true);
    expect(await a.cancel('by-run')).toBe(true);
    expect(await a.cancel('c3')).toBe(true);
    for (const h of held) {
      await eventually(`${h.runId} to end`, () => recorder.ofRun(h.runId)[0]!.end !== null, 10_000);
      expect(recorder.ofRun(h.runId)[0]!.abortReason).toBe('cancel');
      const acked = await loadStatus(fx.store, h.dispatchId, 'Acked');
      expect(acked.termination).toEqual({ type: 'cancelled' });
      await eventually(`the cancelled event of ${h.runId}`, () =>
        events.some((e) => e.name === 'cancelled' && e.dispatch.dispatch_id === h.dispatchId),
      );
    }
    // Nothing is left to cancel: the claims ended.
    expect(await a.cancel(held[0]!.dispatchId)).toBe(false);
  });

  it('a recorded cancel names one claim: the next run of its thread is not aborted by it', async () => {
    const recorder = new Recorder()
      .on('first', behaviours.untilAborted(30_000))
      .on('second', behaviours.untilAborted(30_000));
    const { a, b, fx, storeB } = await twoNodes('epoch-watch-cancel-once', recorder, 50);
    await b.start();
    await b.submitBackground({ threadId: 'c4', runId: 'first' });
    const second = await b.submitBackground({ threadId: 'c4', runId: 'second' });
    await eventually('the first run to start', () => recorder.ofRun('first').length === 1);
    await a.start();
    expect(await a.cancel('first')).toBe(true);
    await eventually('the second run to start', () => recorder.ofRun('second').length === 1, 10_000);
    expect(recorder.ofRun('first')[0]!.abortReason).toBe('cancel');
    // node-a ran nothing: the second run is node-b's, and the thread still holds the first claim's request.
    expect(recorder.ofRun('second')[0]!.consumer).toBe('node-b');
    const running = await loadStatus(fx.store, second.dispatchId, 'Claimed');
    const { cancelToken } = await fx.store.readRunControl('c4');
    expect(cancelToken).not.toBeNull();
    expect(cancelToken).not.toBe(running.claim_token);
    // The watch keeps reading it for the second run, which goes on.
    await epochReads(storeB, 4);
    expect(recorder.ofRun('second')[0]!.end).toBeNull();
  });

  it('without the watch, the lease renewal finds the recorded cancel', async () => {
    const recorder = new Recorder().on('held', behaviours.untilAborted(30_000));
    const { a, b, fx } = await twoNodes('epoch-watch-cancel-renewal', recorder, 0, {
      leaseMs: 3_000,
      leaseRenewalIntervalMs: 200,
    });
    const held = await holdOnB({ a, b }, recorder, 'c5');
    expect(await a.cancel(held.dispatchId)).toBe(true);
    await eventually('the held run to end', () => recorder.ofRun('held')[0]!.end !== null, 10_000);
    expect(recorder.ofRun('held')[0]!.abortReason).toBe('cancel');
    const acked = await loadStatus(fx.store, held.dispatchId, 'Acked');
    expect(acked.termination).toEqual({ type: 'cancelled' });
  });

  it('with live commands a cancel from another node goes live and records no request', async () => {
    const recorder = new Recorder().on('held', behaviours.untilAborted(30_000));
    const { a, b, fx } = await twoNodes('epoch-watch-cancel-live', recorder, 50, {}, await natsUrl());
    const held = await holdOnB({ a, b }, recorder, 'c6');
    expect(await a.cancel(held.dispatchId)).toBe(true);
    await eventually('the held run to end', () => recorder.ofRun('held')[0]!.end !== null, 10_000);
    expect(recorder.ofRun('held')[0]!.abortReason).toBe('cancel');
    await loadStatus(fx.store, held.dispatchId, 'Acked');
    expect((await fx.store.readRunControl('c6')).cancelToken).toBeNull();
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
 * Wait until node-b's store has answered `times` more reads of its runs' threads (the watch's, one per
 * running run per interval), so a run that should not be aborted had every chance to be.
 */
async function epochReads(store: RedisMailboxStore, times: number): Promise<void> {
  let reads = 0;
  const original = store.readRunControl.bind(store);
  store.readRunControl = async (threadId: string) => {
    const control = await original(threadId);
    reads++;
    return control;
  };
  try {
    await eventually(`${times} epoch reads`, () => reads >= times, 10_000);
  } finally {
    store.readRunControl = original;
  }
}

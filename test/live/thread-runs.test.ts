/**
 * NatsLiveChannel.openThreadRuns: one subscription serving the consecutive runs of a thread, against the shared
 * NATS server, producer and consumers on separate connections. The producer side is unchanged: it must see
 * exactly what a per-run subscription gives it (Delivered when the run acks, NoSubscriber otherwise), and
 * never a wrong answer for a run another node executes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveRunCommand, LiveRunTarget } from '../../src/contract/types.js';
import { NatsLiveChannel, liveSubjectPrefix } from '../../src/live/nats-live.js';
import { natsUrl, testNamespace } from '../support/servers.js';
import { connectTo, nextWithin, openLiveNodes, record, wire, type LiveNodes } from './helpers.js';

const ns = testNamespace('live-thread-runs');
const prefix = liveSubjectPrefix(ns);
/** Long enough that a timeout can never pass for an immediate answer. */
const REQUEST_TIMEOUT_MS = 3000;
let nodes: LiveNodes | undefined;
let producer: NatsLiveChannel;
let consumer: NatsLiveChannel;
let other: NatsLiveChannel;
let counter = 0;
const uid = (label: string): string => `${label}-${++counter}`;

beforeAll(async () => {
  nodes = await openLiveNodes(await natsUrl(), prefix, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
  ({ producer, consumer, other } = nodes);
});

afterAll(async () => {
  await nodes?.close();
});

const text = (t: string): LiveRunCommand => ({
  Messages: [{ id: 'm', role: 'user', content: [{ type: 'text', text: t }] }],
});

const target = (thread: string, n: number): LiveRunTarget => ({
  thread_id: thread,
  run_id: `run-${n}`,
  dispatch_id: `d-${n}`,
});

/** A Cancel to `t` is NoSubscriber, answered at once: far below the request timeout a silent subscriber costs. */
async function expectNoSubscriberAtOnce(t: LiveRunTarget): Promise<void> {
  const start = performance.now();
  expect(await producer.deliverLiveTo(t, 'Cancel')).toBe('NoSubscriber');
  expect(performance.now() - start).toBeLessThan(REQUEST_TIMEOUT_MS / 2);
}

describe('one subscription for the runs of a thread', () => {
  it('serves consecutive runs: each gets the commands to its exact target, in order', async () => {
    const thread = uid('t-chain');
    const runs = await consumer.openThreadRuns(thread, () => true);
    for (let n = 1; n <= 3; n++) {
      const stream = runs.openRun(target(thread, n));
      expect(stream).not.toBeNull();
      const rec = record(stream!);
      expect(await producer.deliverLiveTo(target(thread, n), text(`a${n}`))).toBe('Delivered');
      expect(await producer.deliverLiveTo(target(thread, n), 'Cancel')).toBe('Delivered');
      expect((await rec.waitFor(2)).map(wire)).toEqual([wire(text(`a${n}`)), wire('Cancel')]);
      await stream!.close();
      await rec.ended;
    }
    await runs.close();
  });

  it('answers NoSubscriber at once for another run of the thread while its own run holds the thread', async () => {
    const thread = uid('t-other-run');
    const runs = await consumer.openThreadRuns(thread, () => true);
    const current = runs.openRun(target(thread, 2))!;
    const rec = record(current);
    // The run before (already over) and a run not started: nobody executes them.
    for (const n of [1, 3]) await expectNoSubscriberAtOnce(target(thread, n));
    // A target without dispatch id is not the run's exact subject either.
    await expectNoSubscriberAtOnce({ thread_id: thread, run_id: 'run-2', dispatch_id: null });
    expect(rec.seen).toEqual([]);
    await current.close();
    await runs.close();
  });

  it('leaves another node’s run alone when it does not hold the thread: that run still gets Delivered', async () => {
    const thread = uid('t-handover');
    // This node's subscription lingers while the thread already runs elsewhere (it released its claim).
    const runs = await consumer.openThreadRuns(thread, () => false);
    const mine = runs.openRun(target(thread, 1))!;
    const elsewhere = await other.openLiveChannelFor(target(thread, 2));
    const rec = record(elsewhere);
    expect(await producer.deliverLiveTo(target(thread, 2), text('for the other node'))).toBe('Delivered');
    expect((await rec.waitFor(1)).map(wire)).toEqual([wire(text('for the other node'))]);
    expect(await nextWithin(mine, 50)).toBeNull();
    await elsewhere.close();
    await mine.close();
    await runs.close();
  });

  it('does not take thread-level commands, nor runs of another thread', async () => {
    const thread = uid('t-scope');
    const runs = await consumer.openThreadRuns(thread, () => true);
    const stream = runs.openRun(target(thread, 1))!;
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('NoSubscriber');
    await expectNoSubscriberAtOnce(target(uid('t-foreign'), 1));
    expect(await nextWithin(stream, 50)).toBeNull();
    await stream.close();
    await runs.close();
  });

  it('refuses a second stream of one target and targets it cannot serve: the run opens its own channel', async () => {
    const thread = uid('t-refuse');
    const runs = await consumer.openThreadRuns(thread, () => true);
    const first = runs.openRun(target(thread, 1));
    expect(first).not.toBeNull();
    expect(runs.openRun(target(thread, 1))).toBeNull();
    expect(runs.openRun(target(uid('t-elsewhere'), 1))).toBeNull();
    // Long run ids are digested in the run subject; the thread segment stays as it is: still served.
    const longRun: LiveRunTarget = {
      thread_id: thread,
      run_id: 'r'.repeat(3000),
      dispatch_id: 'd'.repeat(3000),
    };
    const served = runs.openRun(longRun);
    expect(served).not.toBeNull();
    const rec = record(served!);
    expect(await producer.deliverLiveTo(longRun, 'Cancel')).toBe('Delivered');
    expect((await rec.waitFor(1)).map(wire)).toEqual([wire('Cancel')]);
    await served!.close();
    // A long thread id: the run subject digests the thread segment, the thread subject does not.
    const longThread = `${thread}-${'x'.repeat(100)}`;
    const longRuns = await consumer.openThreadRuns(longThread, () => true);
    expect(
      longRuns.openRun({ thread_id: longThread, run_id: 'r'.repeat(3000), dispatch_id: 'd-1' }),
    ).toBeNull();
    expect(longRuns.openRun(target(longThread, 1))).not.toBeNull();
    await longRuns.close();
    await first!.close();
    // Its stream closed: the target can be served again.
    const again = runs.openRun(target(thread, 1));
    expect(again).not.toBeNull();
    await again!.close();
    await runs.close();
  });

  it('close ends the open run streams, unsubscribes, and opens no more runs', async () => {
    const thread = uid('t-close');
    const runs = await consumer.openThreadRuns(thread, () => true);
    const stream = runs.openRun(target(thread, 1))!;
    const rec = record(stream);
    await runs.close();
    await rec.ended;
    expect(runs.openRun(target(thread, 2))).toBeNull();
    // No subscription lingers: the server answers no responders at once.
    await expectNoSubscriberAtOnce(target(thread, 1));
    await runs.close();
  });

  it('a closed channel ends its thread subscriptions and refuses new ones', async () => {
    const nc = await connectTo(await natsUrl());
    const channel = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    const thread = uid('t-channel-close');
    const runs = await channel.openThreadRuns(thread, () => true);
    const rec = record(runs.openRun(target(thread, 1))!);
    await channel.close();
    await rec.ended;
    await expect(channel.openThreadRuns(thread, () => true)).rejects.toMatchObject({ kind: 'Io' });
    await nc.close();
  });

  it('validates the thread id', async () => {
    await expect(consumer.openThreadRuns('', () => true)).rejects.toMatchObject({ kind: 'Validation' });
  });
});

/**
 * A Redis store created without NATS has no live commands (deliveries answer `NoSubscriber`, channels are
 * empty streams): it says so (`liveCommands: false`), and a Mailbox over it opens no live channel per run,
 * while steering a run from its own node still reaches the executor.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LiveRunTarget, Message } from '../../src/contract/types.js';
import type { Mailbox } from '../../src/mailbox/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { natsUrl } from '../support/servers.js';
import { openFixture, type RedisFixture } from '../redis/helpers.js';
import { Recorder, behaviours, loadStatus, newMailbox } from './harness.js';
import { eventually } from './wait.js';

const HOUR = 3_600_000;

const fixtures: RedisFixture[] = [];
const mailboxes: Mailbox[] = [];
afterEach(async () => {
  await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  await Promise.all(fixtures.splice(0).map((f) => f.cleanup()));
});

async function fixture(label: string, nats?: string): Promise<RedisFixture> {
  const fx = await openFixture(label, { signals: 'redis-streams', ...(nats ? { nats } : {}) });
  fixtures.push(fx);
  return fx;
}

/** Record every live channel the store is asked for (per run, or per thread). */
function countChannels(store: RedisMailboxStore): { runs: string[]; threads: string[] } {
  const seen = { runs: [] as string[], threads: [] as string[] };
  const openFor = store.openLiveChannelFor.bind(store);
  store.openLiveChannelFor = (target: LiveRunTarget) => {
    seen.runs.push(target.dispatch_id ?? target.thread_id);
    return openFor(target);
  };
  const openThreadRuns = store.openThreadRuns.bind(store);
  store.openThreadRuns = (threadId, holdsThread) => {
    seen.threads.push(threadId);
    return openThreadRuns(threadId, holdsThread);
  };
  return seen;
}

describe('a Redis store without NATS', () => {
  it('says it has no live commands; with NATS it has them', async () => {
    const plain = await fixture('no-live-flag');
    const withNats = await fixture('live-flag', await natsUrl());
    expect(plain.store.liveCommands).toBe(false);
    expect(withNats.store.liveCommands).toBe(true);
    // Read through a Proxy of the store (as wrappers that trace or instrument a store make) it is the same.
    const wrapped = new Proxy(plain.store, { get: (t, p, r) => Reflect.get(t, p, r) as unknown });
    expect(wrapped.liveCommands).toBe(false);
  });

  it('gets no live channel per run from a Mailbox; a run on the same node is still steered', async () => {
    const fx = await fixture('no-live-runs');
    const seen = countChannels(fx.store);
    const recorder = new Recorder().on('steered', behaviours.untilCommanded());
    const mailbox = newMailbox(fx.store, recorder, 'node', { sweepIntervalMs: HOUR }, { logger: {} });
    mailboxes.push(mailbox);
    await mailbox.start();

    const steered = await mailbox.submitBackground({ threadId: 't', runId: 'steered' });
    const next = await mailbox.submitBackground({ threadId: 't', runId: 'after' });
    const other = await mailbox.submitBackground({ threadId: 'u', runId: 'elsewhere' });
    const msg: Message = { id: 'm-1', role: 'user', content: [{ type: 'text', text: 'hello' }] };
    // The recorder reads a run's commands from its start.
    const steeredRun = await eventually('the steered run to start', () => recorder.ofRun('steered')[0]);
    expect(await mailbox.sendMessages('t', [msg], { runId: 'steered' })).toBe('live');
    for (const { dispatchId } of [steered, next, other]) await loadStatus(fx.store, dispatchId, 'Acked');
    expect(steeredRun.commands).toEqual([{ Messages: [msg] }]);
    expect(seen).toEqual({ runs: [], threads: [] });
  });
});

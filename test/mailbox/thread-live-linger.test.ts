/**
 * Lingering thread subscriptions (`RunLiveChannels` with a linger period), driven directly: bounded in number
 * (the one idle longest goes first), reused when the thread is wanted again, replaced when closed underneath,
 * and all dropped, with the sweep timer, when the Mailbox stops.
 */
import { describe, expect, it } from 'vitest';
import type { LiveRunCommandStream } from '../../src/contract/types.js';
import type { ThreadRunsLive } from '../../src/live/channel.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { MAX_LINGERING_THREADS, RunLiveChannels } from '../../src/mailbox/thread-live.js';
import { eventually } from './wait.js';

interface Sub {
  threadId: string;
  /** Closed (by `close()`, or by the test standing in for a connection that ended it). */
  closed: boolean;
  /** `close()` calls. */
  closeCalls: number;
}

/** A store whose thread subscriptions are recorded; each serves every run with a stand-in stream. */
function fakeStore(): { store: MemoryMailboxStore; subs: Sub[] } {
  const store = new MemoryMailboxStore({ signals: false });
  const subs: Sub[] = [];
  const stream = {} as LiveRunCommandStream;
  (store as unknown as Record<string, unknown>).openThreadRuns = (threadId: string) => {
    const sub: Sub = { threadId, closed: false, closeCalls: 0 };
    subs.push(sub);
    const runs: ThreadRunsLive = {
      openRun: () => stream,
      get closed() {
        return sub.closed;
      },
      close: () => {
        sub.closeCalls++;
        sub.closed = true;
        return Promise.resolve();
      },
    };
    return Promise.resolve(runs);
  };
  return { store, subs };
}

/** The live channels of a Mailbox that holds no thread, over a `fakeStore`. */
function channels(lingerMs: number): { subs: Sub[]; live: RunLiveChannels } {
  const { store, subs } = fakeStore();
  return { subs, live: new RunLiveChannels(store, {}, () => false, lingerMs) };
}

const HOUR = 3_600_000;
const target = (threadId: string) => ({ thread_id: threadId, run_id: `run-${threadId}`, dispatch_id: null });
const settle = () => new Promise((r) => setImmediate(r));

describe('lingering thread subscriptions', () => {
  it('keeps an idle one and reuses it when the thread runs again', async () => {
    const { subs, live } = channels(HOUR);
    await live.open(target('t'));
    live.release('t');
    await settle();
    expect(subs.map((s) => s.closed)).toEqual([false]);
    expect(live.lingeringThreads).toBe(1);
    await live.open(target('t'));
    expect(subs).toHaveLength(1);
    expect(live.lingeringThreads).toBe(0);
    await live.closeIdle(() => false);
  });

  it('drops it at once without a linger period', async () => {
    const { subs, live } = channels(0);
    await live.open(target('t'));
    live.release('t');
    await eventually('closed', () => subs[0]?.closed === true);
    expect(live.subscribedThreads).toBe(0);
  });

  it(`keeps at most ${MAX_LINGERING_THREADS}: the one idle longest is dropped first`, async () => {
    const { subs, live } = channels(HOUR);
    for (let i = 0; i <= MAX_LINGERING_THREADS; i++) live.prepare(`t${i}`);
    await settle();
    for (let i = 0; i <= MAX_LINGERING_THREADS; i++) live.release(`t${i}`);
    await eventually('the oldest dropped', () => subs[0]?.closed === true);
    expect(subs.filter((s) => s.closed).map((s) => s.threadId)).toEqual(['t0']);
    expect(live.lingeringThreads).toBe(MAX_LINGERING_THREADS);
    expect(live.subscribedThreads).toBe(MAX_LINGERING_THREADS);
    await live.closeIdle(() => false);
    expect(subs.every((s) => s.closed)).toBe(true);
  });

  it('subscribes again when the one it kept was closed underneath', async () => {
    const { subs, live } = channels(HOUR);
    await live.open(target('t'));
    live.release('t');
    (subs[0] as Sub).closed = true; // the connection ended it
    await live.open(target('t'));
    expect(subs).toHaveLength(2);
    expect(subs[1]?.closed).toBe(false);
    // The stale one is closed too, so the store's channel forgets it.
    await eventually('the stale one closed', () => subs[0]?.closeCalls === 1);
    expect(live.subscribedThreads).toBe(1);
    await live.closeIdle(() => false);
  });

  it('never drops one a run uses: a lingering one taken again stays while idle ones expire', async () => {
    const { subs, live } = channels(100);
    await live.open(target('reused'));
    live.release('reused');
    await live.open(target('reused')); // its next run, within the linger period
    await live.open(target('running')); // never released
    // Expiry is observed on threads released later than those, so their idle periods passed as well.
    for (const round of [1, 2, 3]) {
      await live.open(target(`idle-${round}`));
      live.release(`idle-${round}`);
      await eventually(
        `idle-${round} dropped`,
        () => subs.find((s) => s.threadId === `idle-${round}`)?.closed,
      );
    }
    expect(
      subs.filter((s) => s.threadId === 'reused' || s.threadId === 'running').map((s) => s.closed),
    ).toEqual([false, false]);
    expect(live.lingeringThreads).toBe(0);
    await live.closeIdle(() => false);
  });

  it('after the Mailbox stops, nothing lingers: a run that ends later drops its subscription at once', async () => {
    const { subs, live } = channels(HOUR);
    await live.open(target('idle'));
    live.release('idle');
    await live.open(target('busy'));
    await live.closeIdle((threadId) => threadId === 'busy');
    expect(subs.map((s) => [s.threadId, s.closed])).toEqual([
      ['idle', true],
      ['busy', false],
    ]);
    live.release('busy');
    await eventually('closed at once', () => subs[1]?.closed === true);
    expect(live.lingeringThreads).toBe(0);
  });
});

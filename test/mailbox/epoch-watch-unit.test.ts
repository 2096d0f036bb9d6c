/**
 * The epoch watch on its own, with fake runs, a fake store and fake timers: which runs it reads, when it
 * aborts (with `interrupt` for a moved epoch, with `cancel` for a cancel request naming the claim), that no timer is left while nothing is watched, that a read that never answers only skips its own
 * run, that more runs than MAX_EPOCH_READS take turns, and that stop() ends it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ActiveRun } from '../../src/mailbox/active-run.js';
import { EpochWatch, MAX_EPOCH_READS } from '../../src/mailbox/epoch-watch.js';

interface FakeRun {
  dispatch: { dispatch_id: string; thread_id: string; dispatch_epoch: number; claim_token: string };
  label: Record<string, unknown>;
  executing: boolean;
  aborted: boolean;
  hasLiveChannel: boolean;
  abortReasons: string[];
  abort(reason: string): boolean;
}

function fakeRun(threadId: string, epoch = 1, hasLiveChannel = false): FakeRun {
  return {
    dispatch: {
      dispatch_id: `d-${threadId}`,
      thread_id: threadId,
      dispatch_epoch: epoch,
      claim_token: `tok-${threadId}`,
    },
    label: { threadId },
    executing: true,
    aborted: false,
    hasLiveChannel,
    abortReasons: [],
    abort(reason) {
      if (this.aborted) return false;
      this.aborted = true;
      this.abortReasons.push(reason);
      return true;
    },
  };
}

const INTERVAL = 100;
let runs: FakeRun[];
let epochs: Map<string, number>;
/** Threads' latest cancel requests (claim tokens). */
let cancels: Map<string, string>;
let reads: string[];
/** Threads whose reads never answer. */
let hanging: Set<string>;
/** Threads whose reads answer when the test says so (`answer`). */
let deferred: Map<string, (epoch: number) => void>;

function watch(): EpochWatch {
  return new EpochWatch({
    readControl: async (threadId: string) => {
      reads.push(threadId);
      const epoch = hanging.has(threadId)
        ? await new Promise<number>(() => {})
        : deferred.has(threadId)
          ? await new Promise<number>((resolve) => deferred.set(threadId, resolve))
          : (epochs.get(threadId) ?? 0);
      return { epoch, cancelToken: cancels.get(threadId) ?? null };
    },
    intervalMs: INTERVAL,
    runs: () => runs as unknown as ActiveRun[],
    logger: {},
  });
}

beforeEach(() => {
  vi.useFakeTimers();
  runs = [];
  epochs = new Map();
  cancels = new Map();
  reads = [];
  hanging = new Set();
  deferred = new Map();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('EpochWatch', () => {
  it('aborts with `interrupt` the runs whose thread moved past their claim, and only those', async () => {
    const stale = fakeRun('a', 1);
    const current = fakeRun('b', 2);
    runs = [stale, current];
    epochs.set('a', 2).set('b', 2);
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads.sort()).toEqual(['a', 'b']);
    expect(stale.abortReasons).toEqual(['interrupt']);
    expect(current.abortReasons).toEqual([]);
    w.stop();
  });

  it('aborts with `cancel` the run whose claim a cancel request names; an interrupt wins over it', async () => {
    const named = fakeRun('a', 1);
    const otherClaim = fakeRun('b', 1);
    const both = fakeRun('c', 1);
    runs = [named, otherClaim, both];
    epochs.set('a', 1).set('b', 1).set('c', 2);
    // b's request names an earlier claim of its thread (ended since): not this run's.
    cancels.set('a', 'tok-a').set('b', 'tok-earlier').set('c', 'tok-c');
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(named.abortReasons).toEqual(['cancel']);
    expect(otherClaim.abortReasons).toEqual([]);
    expect(both.abortReasons).toEqual(['interrupt']);
    // The aborted runs are not read again; the other one still is.
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads.filter((t) => t === 'b')).toHaveLength(2);
    expect(reads.filter((t) => t === 'a')).toHaveLength(1);
    w.stop();
  });

  it('reads nothing for runs a live channel reaches, finished or aborted runs, and leaves no timer then', async () => {
    const live = fakeRun('live', 1, true);
    const settling = fakeRun('settling');
    settling.executing = false;
    const aborted = fakeRun('aborted');
    aborted.aborted = true;
    runs = [live, settling, aborted];
    epochs.set('live', 5).set('settling', 5).set('aborted', 5);
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads).toEqual([]);
    expect(live.abortReasons).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    // A run to watch starts: the next wake schedules again.
    runs.push(fakeRun('plain', 0));
    w.wake();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads).toEqual(['plain']);
    w.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps reading every interval while runs execute; a run that ended meanwhile is not aborted', async () => {
    const run = fakeRun('t', 1);
    runs = [run];
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(reads).toEqual(['t', 't', 't']);
    // The read answers stale, but the executor returned before the answer: nothing to abort.
    deferred.set('t', () => {});
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads).toHaveLength(4);
    run.executing = false;
    deferred.get('t')!(7);
    await vi.advanceTimersByTimeAsync(0);
    expect(run.abortReasons).toEqual([]);
    w.stop();
  });

  it('a read that never answers skips only its own run, which is not read again meanwhile', async () => {
    const stuck = fakeRun('stuck', 1);
    const other = fakeRun('other', 1);
    runs = [stuck, other];
    hanging.add('stuck');
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(reads.filter((t) => t === 'stuck')).toHaveLength(1);
    expect(reads.filter((t) => t === 'other')).toHaveLength(3);
    epochs.set('other', 2);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(other.abortReasons).toEqual(['interrupt']);
    w.stop();
  });

  it(`reads at most ${MAX_EPOCH_READS} runs per interval; the others take the next turns`, async () => {
    runs = Array.from({ length: MAX_EPOCH_READS + 10 }, (_, i) => fakeRun(`t${i}`, 1));
    const w = watch();
    w.wake();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads).toHaveLength(MAX_EPOCH_READS);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(reads).toHaveLength(2 * MAX_EPOCH_READS);
    expect(new Set(reads).size).toBe(MAX_EPOCH_READS + 10);
    w.stop();
  });

  it('stop() ends it: no timer, no more reads, wake() does nothing', async () => {
    runs = [fakeRun('t', 1)];
    const w = watch();
    w.wake();
    w.stop();
    expect(vi.getTimerCount()).toBe(0);
    w.wake();
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(reads).toEqual([]);
  });

  it('refuses an interval that is not a positive integer', () => {
    for (const intervalMs of [0, -5, 1.5, Number.NaN]) {
      expect(
        () =>
          new EpochWatch({
            readControl: () => Promise.resolve({ epoch: 0, cancelToken: null }),
            intervalMs,
            runs: () => [],
            logger: {},
          }),
      ).toThrow(RangeError);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { MAX_PARKED_SIGNAL_MS, filterSignals } from '../../src/signals/filter.js';
import type { RawSignal } from '../../src/signals/transport.js';
import { createMailboxStore } from '../../src/redis/index.js';
import { redisUrl } from '../support/servers.js';

function recordingSignal(id: string): RawSignal & { settled: string[] } {
  const settled: string[] = [];
  return {
    thread_id: 't',
    dispatch_id: id,
    settled,
    receipt: {
      redeliveryAttempts: () => 1,
      ack: async () => void settled.push('ack'),
      nack: async () => void settled.push('nack'),
      nackWithDelay: async (ms: number) => void settled.push(`delay:${ms}`),
    },
  };
}

describe('filterSignals', () => {
  const now = 1_000_000;
  const queued = (id: string, availableAt: number): RunDispatch =>
    queuedDispatch({
      dispatch_id: id,
      thread_id: 't',
      run_id: 'r',
      created_at: 1,
      available_at: availableAt,
    });

  it('returns available dispatches, acks missing/terminal ones, parks short waits and acks long ones', async () => {
    const signals = ['ready', 'missing', 'done', 'soon', 'later'].map(recordingSignal);
    const records: Record<string, RunDispatch | null> = {
      ready: queued('ready', now),
      missing: null,
      done: { ...queued('done', now), status: 'Acked', completed_at: now },
      soon: queued('soon', now + 500),
      later: queued('later', now + MAX_PARKED_SIGNAL_MS + 1),
    };
    const kept = await filterSignals(signals, async (ids) => ids.map((id) => records[id] ?? null), now);
    expect(kept.map((e) => e.dispatch_id)).toEqual(['ready']);
    expect(signals.map((s) => s.settled)).toEqual([[], ['ack'], ['ack'], ['delay:500'], ['ack']]);
  });

  it('nacks every signal for immediate redelivery when the records cannot be loaded', async () => {
    const signals = ['a', 'b'].map(recordingSignal);
    await expect(
      filterSignals(signals, async () => Promise.reject(new Error('redis down')), now),
    ).rejects.toThrow('redis down');
    expect(signals.map((s) => s.settled)).toEqual([['nack'], ['nack']]);
  });
});

describe('reserved namespace', () => {
  it('refuses "dispatch", whose subjects overlap the default signal stream', async () => {
    await expect(
      createMailboxStore({ redis: await redisUrl(), namespace: 'dispatch' }),
    ).rejects.toMatchObject({
      kind: 'Validation',
    });
  });
});

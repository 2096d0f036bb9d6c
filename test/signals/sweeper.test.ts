import { describe, expect, it } from 'vitest';
import { SignalSweeper } from '../../src/signals/sweeper.js';
import type { RawSignal, SignalRef, SignalTransport } from '../../src/signals/transport.js';

class FakeTransport implements SignalTransport {
  readonly published: SignalRef[][] = [];
  constructor(readonly kind: SignalTransport['kind']) {}
  async publish(signals: readonly SignalRef[]): Promise<void> {
    this.published.push([...signals]);
  }
  async pull(): Promise<RawSignal[]> {
    return [];
  }
  async close(): Promise<void> {}
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(2);
  }
}

describe('SignalSweeper', () => {
  it('publishes swept refs through a JetStream transport, with Date.now() and the limit', async () => {
    const transport = new FakeTransport('jetstream');
    const calls: [number, number][] = [];
    const sweeper = new SignalSweeper({
      sweep: async (now, limit) => {
        calls.push([now, limit]);
        return calls.length === 1 ? [{ thread_id: 't', dispatch_id: 'd' }] : [];
      },
      transport,
      intervalMs: 20,
      limit: 7,
    });
    const before = Date.now();
    sweeper.start();
    await sleep(150);
    await sweeper.stop();
    expect(calls.length).toBeGreaterThan(1);
    expect(calls[0]?.[1]).toBe(7);
    expect(calls[0]?.[0]).toBeGreaterThanOrEqual(before);
    expect(transport.published).toEqual([[{ thread_id: 't', dispatch_id: 'd' }]]);
  });

  it('does not publish for Redis Streams (the sweep script already wrote the signals)', async () => {
    const transport = new FakeTransport('redis-streams');
    let calls = 0;
    const sweeper = new SignalSweeper({
      sweep: async () => {
        calls++;
        return [{ thread_id: 't', dispatch_id: 'd' }];
      },
      transport,
      intervalMs: 20,
    });
    sweeper.start();
    await sleep(100);
    await sweeper.stop();
    expect(calls).toBeGreaterThan(0);
    expect(transport.published).toEqual([]);
  });

  it('never overlaps ticks, logs errors and keeps going, and stop() waits for the running tick', async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let finished = 0;
    const warnings: string[] = [];
    const sweeper = new SignalSweeper({
      sweep: async () => {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(40);
        running--;
        finished++;
        if (calls % 2 === 1) throw new Error('boom');
        return [];
      },
      transport: new FakeTransport('jetstream'),
      intervalMs: 5,
      logger: { warn: (msg) => warnings.push(msg) },
    });
    sweeper.start();
    await sleep(200);
    await sweeper.stop();
    const callsAtStop = calls;
    expect(finished).toBe(calls);
    expect(maxRunning).toBe(1);
    expect(calls).toBeGreaterThan(2);
    expect(warnings.length).toBeGreaterThan(0);
    await sleep(60);
    expect(calls).toBe(callsAtStop);
  });

  it('sweeps further pages in one tick while pages come back full (bounded)', async () => {
    const transport = new FakeTransport('jetstream');
    let calls = 0;
    const sweeper = new SignalSweeper({
      sweep: async (_now, limit) => {
        calls++;
        return Array.from({ length: limit }, (_, i) => ({ thread_id: 't', dispatch_id: `d${calls}-${i}` }));
      },
      transport,
      intervalMs: 60_000,
      limit: 2,
    });
    expect(await sweeper.runOnce()).toBe(20);
    expect(calls).toBe(10);
  });

  it('soon() brings the next tick forward, coalesced, also when asked during a tick', async () => {
    const transport = new FakeTransport('jetstream');
    let calls = 0;
    let release: (() => void) | null = null;
    const sweeper = new SignalSweeper({
      sweep: async () => {
        calls++;
        // The second tick waits until the test lets it end, so a soon() lands while it runs.
        if (calls === 2) await new Promise<void>((r) => (release = r));
        return [];
      },
      transport,
      intervalMs: 3_600_000,
    });
    sweeper.soon(1); // before start: nothing
    sweeper.start();
    sweeper.soon(5);
    sweeper.soon(5);
    await waitFor(() => calls === 1);
    sweeper.soon(1);
    await waitFor(() => release !== null);
    sweeper.soon(1);
    (release as unknown as () => void)();
    await waitFor(() => calls === 3);
    await sweeper.stop();
    sweeper.soon(1); // after stop: nothing
    await sleep(30);
    expect(calls).toBe(3);
  });

  it('rejects bad options', () => {
    const transport = new FakeTransport('jetstream');
    const sweep = async (): Promise<SignalRef[]> => [];
    expect(() => new SignalSweeper({ sweep, transport, intervalMs: 0 })).toThrow();
    expect(() => new SignalSweeper({ sweep, transport, intervalMs: 10, limit: 0 })).toThrow();
  });
});

import { describe, expect, it, vi } from 'vitest';
import { chooseBackend, hostPort, natsInfo, redisReachable } from '../../src/bench/backend.js';
import { versionAtLeast } from '../../src/bench/doctor.js';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import { ProgressDisplay, formatProgress } from '../../src/bench/progress.js';
import type { ProgressState } from '../../src/bench/progress.js';
import { encodeMessage, parseCoordinatorMessage, parseNodeMessage } from '../../src/bench/protocol.js';
import { Submitter } from '../../src/bench/submitter.js';
import { EnqueueTimes, dispatchIndex } from '../../src/bench/timeline.js';
import { freePort, natsUrl, redisUrl } from '../support/servers.js';

describe('latency histogram', () => {
  it('reports percentiles in ms with microsecond resolution', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 1000; i += 1) h.recordMs(i / 100); // 0.01 .. 10 ms
    const s = h.summary();
    expect(s.count).toBe(1000);
    expect(s.p50).toBeCloseTo(5, 1);
    expect(s.p99).toBeCloseTo(9.9, 1);
    expect(s.max).toBeCloseTo(10, 1);
    expect(h.percentileMs(90)).toBeCloseTo(9, 1);
    h.destroy();
  });

  it('clamps negatives to 0, counts over-range values, ignores NaN, and adds/resets', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    a.recordMs(-3);
    a.recordMs(Number.NaN);
    b.recordMs(10 * 3_600_000);
    expect(a.count).toBe(1);
    expect(b.clamped).toBe(1);
    a.add(b);
    expect(a.count).toBe(2);
    expect(a.clamped).toBe(1);
    a.reset();
    expect(a.summary()).toEqual({ count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
  });
});

describe('node protocol', () => {
  it('round-trips messages and rejects malformed lines', () => {
    const start = {
      t: 'start',
      d: 'd1',
      th: 't1',
      r: 'r1',
      c: 'c1',
      i: 'i1',
      a: 1,
      at: 123.5,
      l: true,
    } as const;
    expect(parseNodeMessage(encodeMessage(start).trim())).toEqual(start);
    expect(parseNodeMessage('{"t":"end","d":"d1","c":"c1","at":1,"o":"completed"}')).toMatchObject({
      t: 'end',
    });
    expect(parseNodeMessage('{"t":"event","e":"deadLettered","d":"d1"}')).toMatchObject({
      e: 'deadLettered',
    });
    for (const bad of [
      'not json',
      '[]',
      '{"t":"start","d":"d1"}',
      '{"t":"start","d":"d1","th":"t","r":"r","c":"c","i":"i","a":1,"at":1,"l":"yes"}',
      '{"t":"end","d":"d1","c":"c1","at":1,"o":"exploded"}',
      '{"t":"event","e":"vanished","d":"d1"}',
      '{"t":"mystery"}',
    ]) {
      expect(parseNodeMessage(bad)).toBeNull();
    }
    expect(parseCoordinatorMessage('{"t":"stop"}')).toEqual({ t: 'stop' });
    expect(parseCoordinatorMessage('{"t":"go"}')).toBeNull();
  });

  it('carries CPU requests and answers', () => {
    expect(parseCoordinatorMessage(encodeMessage({ t: 'cpu' }).trim())).toEqual({ t: 'cpu' });
    const answer = { t: 'cpu', node: 'node-1', user: 1500, system: 250 } as const;
    expect(parseNodeMessage(encodeMessage(answer).trim())).toEqual(answer);
    expect(parseNodeMessage('{"t":"cpu","node":"node-1","user":"1500","system":0}')).toBeNull();
    expect(parseNodeMessage('{"t":"cpu","user":1,"system":0}')).toBeNull();
  });
});

describe('enqueue times and ids', () => {
  it('keeps one time per index and hands it out once', () => {
    const times = new EnqueueTimes();
    times.set(0, 10);
    times.set(70_000, 20); // second chunk
    expect(times.take(70_000)).toBe(20);
    expect(times.take(70_000)).toBeNaN();
    expect(times.take(0)).toBe(10);
    expect(times.take(5)).toBeNaN();
    expect(times.take(10_000_000)).toBeNaN();
    expect(dispatchIndex('d42')).toBe(42);
    expect(dispatchIndex('x42')).toBe(-1);
    expect(dispatchIndex('d')).toBe(-1);
    expect(dispatchIndex('d-1')).toBe(-1);
  });
});

describe('progress display', () => {
  const state: ProgressState = {
    label: 'memory',
    elapsedMs: 1500,
    submitted: 200,
    total: 1000,
    completed: 120,
    terminal: 125,
    inFlight: 8,
    queued: 67,
    rate: 80.4,
  };

  it('redraws one line on a TTY', () => {
    const out: string[] = [];
    const p = new ProgressDisplay({ isTTY: true, columns: 200, write: (s: string) => out.push(s) });
    p.update(state);
    p.update({ ...state, completed: 130 });
    p.finish({ ...state, completed: 1000 });
    expect(out).toHaveLength(3);
    expect(out[0]!.startsWith('\r\x1b[2K')).toBe(true);
    expect(out[0]).not.toContain('\n');
    expect(out[2]!.endsWith('\n')).toBe(true);
    expect(formatProgress(state)).toContain('completed 120/1,000');
    expect(formatProgress(state)).toContain('in flight 8');
    expect(formatProgress(state)).toContain('rate 80/s');
  });

  it('prints quiet lines at most every interval when not a TTY', () => {
    const out: string[] = [];
    const p = new ProgressDisplay({ isTTY: false, write: (s: string) => out.push(s) }, 'auto', 5000);
    for (let ms = 0; ms <= 12_000; ms += 100) p.update({ ...state, elapsedMs: ms });
    expect(out).toHaveLength(3); // 0, 5000, 10000
    expect(out.every((l) => l.endsWith('\n') && !l.includes('\x1b'))).toBe(true);
    const off: string[] = [];
    new ProgressDisplay({ write: (s: string) => off.push(s) }, 'off').update(state);
    expect(off).toHaveLength(0);
  });
});

describe('submitter', () => {
  it('submits exactly the count, never more than `concurrency` at once', async () => {
    let inflight = 0;
    let peak = 0;
    const seen: number[] = [];
    const s = new Submitter(
      { count: 50, durationMs: null, rate: null, maxPending: null, concurrency: 4 },
      async (i) => {
        inflight += 1;
        peak = Math.max(peak, inflight);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(i);
        inflight -= 1;
      },
    );
    const out = await s.run();
    expect(out.submitted).toBe(50);
    expect(out.error).toBeNull();
    expect(peak).toBeLessThanOrEqual(4);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('paces at the given rate (at least the scheduled time passes)', async () => {
    const s = new Submitter(
      { count: 21, durationMs: null, rate: 100, maxPending: null, concurrency: 8 },
      async () => {},
    );
    const out = await s.run();
    // The 21st submission is due 200 ms after the start.
    expect(out.endedAt - out.startedAt).toBeGreaterThanOrEqual(190);
  });

  it('stops on the first error and on stop(), and honours the backlog bound', async () => {
    const failing = new Submitter(
      { count: 100, durationMs: null, rate: null, maxPending: null, concurrency: 1 },
      async (i) => {
        if (i === 3) throw new Error('boom');
      },
    );
    const out = await failing.run();
    expect(out.error?.message).toBe('boom');
    expect(out.submitted).toBeLessThan(100);

    let done = 0;
    const bounded: Submitter = new Submitter(
      { count: null, durationMs: 60_000, rate: null, maxPending: 5, concurrency: 8 },
      async () => {},
      () => bounded.submitted - done,
    );
    const run = bounded.run();
    await vi.waitFor(() => expect(bounded.submitted).toBe(5));
    await new Promise((r) => setTimeout(r, 30));
    expect(bounded.submitted).toBe(5); // nothing finished: the backlog bound holds
    done = 3;
    await vi.waitFor(() => expect(bounded.submitted).toBe(8));
    await new Promise((r) => setTimeout(r, 30));
    expect(bounded.submitted).toBe(8);
    bounded.stop();
    await run;
  });
});

describe('backend probes and choice', () => {
  it('parses host and port', () => {
    expect(hostPort('redis://127.0.0.1:6390', 6379)).toEqual({ host: '127.0.0.1', port: 6390 });
    expect(hostPort('redis://:pw@localhost', 6379)).toEqual({ host: 'localhost', port: 6379 });
    expect(hostPort('127.0.0.1:4333', 4222)).toEqual({ host: '127.0.0.1', port: 4333 });
  });

  it('sees the test servers and nothing on a free port', async () => {
    const [redis, nats, port] = await Promise.all([redisUrl(), natsUrl(), freePort()]);
    expect(await redisReachable(redis)).toBe(true);
    expect((await natsInfo(nats))?.jetstream).toBe(true);
    expect(await redisReachable(`redis://127.0.0.1:${port}`, 300)).toBe(false);
    expect(await natsInfo(`nats://127.0.0.1:${port}`, 300)).toBeNull();
  });

  it('picks redis + jetstream when both answer, memory when Redis does not, and says why', async () => {
    const [redis, nats, port] = await Promise.all([redisUrl(), natsUrl(), freePort()]);
    const base = {
      backend: 'auto' as const,
      redis,
      nats,
      signals: null,
      natsExplicit: false,
      namespace: 'ns',
    };
    const both = await chooseBackend(base);
    expect(both.spec).toEqual({ kind: 'redis', redis, nats, signals: 'jetstream', namespace: 'ns' });
    const noNats = await chooseBackend({ ...base, nats: `nats://127.0.0.1:${port}` });
    expect(noNats.spec).toMatchObject({ kind: 'redis', nats: null, signals: 'redis-streams' });
    expect(noNats.reason).toMatch(/NATS is not reachable/);
    const memory = await chooseBackend({ ...base, redis: `redis://127.0.0.1:${port}` });
    expect(memory.spec).toEqual({ kind: 'memory' });
    expect(memory.reason).toMatch(/Redis is not reachable/);
    await expect(
      chooseBackend({ ...base, backend: 'redis', redis: `redis://127.0.0.1:${port}` }),
    ).rejects.toThrow(/not reachable/);
    await expect(
      chooseBackend({ ...base, nats: `nats://127.0.0.1:${port}`, natsExplicit: true }),
    ).rejects.toThrow(/--nats/);
    await expect(chooseBackend({ ...base, nats: null, signals: 'jetstream' })).rejects.toThrow(/JetStream/);
    expect((await chooseBackend({ ...base, signals: 'redis-streams' })).spec).toMatchObject({
      signals: 'redis-streams',
      nats,
    });
  });

  it('falls back to memory only when no Redis was named', async () => {
    const port = await freePort();
    const base = {
      backend: 'auto' as const,
      redis: `redis://127.0.0.1:${port}`,
      nats: null,
      signals: null,
      natsExplicit: false,
      namespace: 'ns',
    };
    expect((await chooseBackend({ ...base, redisSource: null })).spec).toEqual({ kind: 'memory' });
    await expect(chooseBackend({ ...base, redisSource: '--redis' })).rejects.toThrow(
      `Redis is not reachable at redis://127.0.0.1:${port} (given by --redis)`,
    );
    await expect(chooseBackend({ ...base, redisSource: '$REDIS_URL' })).rejects.toThrow(/\$REDIS_URL/);
    // --backend memory never probes Redis at all.
    expect((await chooseBackend({ ...base, backend: 'memory', redisSource: '--redis' })).spec).toEqual({
      kind: 'memory',
    });
  });
});

describe('doctor helpers', () => {
  it('compares versions numerically', () => {
    expect(versionAtLeast('7.0.15', '7.0.0')).toBe(true);
    expect(versionAtLeast('7.10.0', '7.9.0')).toBe(true);
    expect(versionAtLeast('6.2.14', '7.0.0')).toBe(false);
    expect(versionAtLeast('2.9.10', '2.9.0')).toBe(true);
    expect(versionAtLeast('2.10.0-beta.1', '2.9.0')).toBe(true);
    expect(versionAtLeast('2.8', '2.9.0')).toBe(false);
  });
});

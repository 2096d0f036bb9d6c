import { describe, expect, it } from 'vitest';
import { BENCH_DEFAULTS, parseBenchOptions, parseDurationMs, parseKillAt } from '../../src/bench/options.js';
import { StorageError } from '../../src/contract/errors.js';
import { benchMailboxConfig } from '../../src/bench/run.js';
import { DEFAULT_MAILBOX_CONFIG } from '../../src/mailbox/config.js';

const env = {};

function validationOf(fn: () => unknown): StorageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('Validation');
    return err as StorageError;
  }
  throw new Error('expected a Validation error');
}

describe('bench options', () => {
  it('has sensible defaults', () => {
    const o = parseBenchOptions({}, env);
    expect(o).toMatchObject({
      backend: 'auto',
      redis: 'redis://127.0.0.1:6379',
      nats: 'nats://127.0.0.1:4222',
      natsExplicit: false,
      signals: null,
      nodes: BENCH_DEFAULTS.nodes,
      threads: BENCH_DEFAULTS.threads,
      dispatches: BENCH_DEFAULTS.dispatches,
      durationMs: null,
      rate: null,
      warmupMs: 0,
      maxPending: null,
      runMsSpec: BENCH_DEFAULTS.runMs,
      killNodeAt: null,
      json: false,
      report: null,
      baseline: null,
    });
  });

  it('takes the server URLs from the environment', () => {
    const o = parseBenchOptions({}, { REDIS_URL: 'redis://r:1', NATS_URL: 'nats://n:2' });
    expect(o.redis).toBe('redis://r:1');
    expect(o.nats).toBe('nats://n:2');
    expect(parseBenchOptions({ nats: false }, env).nats).toBeNull();
    expect(parseBenchOptions({ nats: 'nats://x:3' }, env)).toMatchObject({
      nats: 'nats://x:3',
      natsExplicit: true,
    });
  });

  it('parses every option', () => {
    const o = parseBenchOptions(
      {
        backend: 'redis',
        signals: 'redis-streams',
        nodes: '3',
        threads: '16',
        duration: '10s',
        rate: '500',
        warmup: '2s',
        runMs: 'uniform:1-3',
        failRate: '0.1',
        interruptRate: '0.05',
        liveRate: '0.2',
        killNodeAt: '40%',
        leaseMs: '500',
        json: true,
        report: 'r.html',
        baseline: 'bullmq',
      },
      env,
    );
    expect(o).toMatchObject({
      backend: 'redis',
      signals: 'redis-streams',
      nodes: 3,
      threads: 16,
      dispatches: null,
      durationMs: 10_000,
      maxPending: 16 * 16,
      rate: 500,
      warmupMs: 2000,
      runMs: { kind: 'uniform', min: 1, max: 3 },
      failRate: 0.1,
      interruptRate: 0.05,
      liveRate: 0.2,
      killNodeAt: { kind: 'fraction', f: 0.4 },
      leaseMs: 500,
      json: true,
      report: 'r.html',
      baseline: 'bullmq',
    });
  });

  it('rejects bad values naming the option', () => {
    expect(validationOf(() => parseBenchOptions({ nodes: '0' }, env)).message).toMatch(/--nodes/);
    expect(validationOf(() => parseBenchOptions({ nodes: '1.5' }, env)).message).toMatch(/--nodes/);
    expect(validationOf(() => parseBenchOptions({ failRate: '2' }, env)).message).toMatch(/--fail-rate/);
    expect(validationOf(() => parseBenchOptions({ liveRate: 'x' }, env)).message).toMatch(/--live-rate/);
    expect(validationOf(() => parseBenchOptions({ backend: 'sqlite' }, env)).message).toMatch(/--backend/);
    expect(validationOf(() => parseBenchOptions({ signals: 'kafka' }, env)).message).toMatch(/--signals/);
    expect(validationOf(() => parseBenchOptions({ runMs: 'soon' }, env)).message).toMatch(/--run-ms/);
    expect(validationOf(() => parseBenchOptions({ warmup: 'later' }, env)).message).toMatch(/--warmup/);
    expect(validationOf(() => parseBenchOptions({ dispatches: '10', duration: '1s' }, env)).message).toMatch(
      /exclusive/,
    );
    expect(validationOf(() => parseBenchOptions({ killNodeAt: '50%', nodes: '1' }, env)).message).toMatch(
      /at least 2 nodes/,
    );
    expect(
      validationOf(() => parseBenchOptions({ killNodeAt: '50%', backend: 'memory' }, env)).message,
    ).toMatch(/node processes/);
    expect(
      validationOf(() => parseBenchOptions({ baseline: 'bullmq', backend: 'memory' }, env)).message,
    ).toMatch(/--baseline/);
    expect(validationOf(() => parseBenchOptions({ baseline: 'kue' }, env)).message).toMatch(/--baseline/);
    expect(validationOf(() => parseBenchOptions({ leaseMs: '10' }, env)).message).toMatch(/--lease-ms/);
    expect(validationOf(() => parseBenchOptions({ epochPollMs: '-1' }, env)).message).toMatch(
      /--epoch-poll-ms/,
    );
  });

  it("--epoch-poll-ms sets the nodes' epochPollIntervalMs (the Mailbox default unless given; 0 turns it off)", () => {
    expect(parseBenchOptions({}, env).epochPollMs).toBe(DEFAULT_MAILBOX_CONFIG.epochPollIntervalMs);
    expect(benchMailboxConfig(parseBenchOptions({}, env)).epochPollIntervalMs).toBe(250);
    expect(benchMailboxConfig(parseBenchOptions({ epochPollMs: '0' }, env)).epochPollIntervalMs).toBe(0);
    expect(benchMailboxConfig(parseBenchOptions({ epochPollMs: '40' }, env)).epochPollIntervalMs).toBe(40);
  });

  it('--baseline takes one peer or a list, and records who named the Redis', () => {
    expect(parseBenchOptions({}, env)).toMatchObject({ baselines: [], baseline: null, redisSource: null });
    expect(parseBenchOptions({ baseline: 'groupmq' }, env)).toMatchObject({
      baseline: 'groupmq',
      baselines: ['groupmq'],
    });
    expect(parseBenchOptions({ baseline: 'bullmq,groupmq' }, env)).toMatchObject({
      baseline: 'bullmq',
      baselines: ['bullmq', 'groupmq'],
    });
    expect(parseBenchOptions({ baseline: 'groupmq, bullmq,groupmq' }, env).baselines).toEqual([
      'groupmq',
      'bullmq',
    ]);
    for (const bad of ['', 'bullmq,', 'bullmq,kue', 'BullMQ']) {
      expect(validationOf(() => parseBenchOptions({ baseline: bad }, env)).message).toMatch(
        /--baseline must be one of bullmq, groupmq/,
      );
    }
    expect(
      validationOf(() => parseBenchOptions({ baseline: 'groupmq', backend: 'memory' }, env)).message,
    ).toMatch(/--baseline/);
    expect(parseBenchOptions({ redis: 'redis://x:1' }, env).redisSource).toBe('--redis');
    expect(parseBenchOptions({ redis: 'redis://x:1' }, { REDIS_URL: 'redis://y:2' })).toMatchObject({
      redis: 'redis://x:1',
      redisSource: '--redis',
    });
    expect(parseBenchOptions({}, { REDIS_URL: 'redis://y:2' })).toMatchObject({
      redis: 'redis://y:2',
      redisSource: '$REDIS_URL',
    });
    expect(parseBenchOptions({}, { REDIS_URL: '' }).redisSource).toBeNull();
  });

  it('parses durations and kill points', () => {
    expect(parseDurationMs('d', '500ms')).toBe(500);
    expect(parseDurationMs('d', '2.5s')).toBe(2500);
    expect(parseDurationMs('d', '2m')).toBe(120_000);
    expect(parseDurationMs('d', '3')).toBe(3000);
    expect(() => parseDurationMs('d', '0s')).toThrow(/positive/);
    expect(() => parseDurationMs('d', 'later')).toThrow(/duration/);
    expect(parseKillAt('150')).toEqual({ kind: 'count', n: 150 });
    expect(parseKillAt('50%')).toEqual({ kind: 'fraction', f: 0.5 });
    expect(parseKillAt('2s')).toEqual({ kind: 'time', ms: 2000 });
    expect(parseKillAt('750ms')).toEqual({ kind: 'time', ms: 750 });
    expect(() => parseKillAt('150%')).toThrow(/0\.\.100/);
    expect(() => parseKillAt('half')).toThrow(/kill-node-at/);
  });

  it('--quiet-claimed-threads is off unless given', () => {
    expect(parseBenchOptions({}, env).quietClaimedThreads).toBe(false);
    expect(parseBenchOptions({ quietClaimedThreads: true }, env).quietClaimedThreads).toBe(true);
  });
});

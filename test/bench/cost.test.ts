/**
 * The bench's cost accounting: parsing Redis INFO, per-dispatch command counts, finding a local server's
 * process by its port, and the meter end to end against the test Redis with stand-in node processes.
 */
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CostMeter,
  commandsPerDispatch,
  findListenerProcess,
  parseCommandStats,
  parseInfo,
  procCpuMicros,
  redisCpuSeconds,
} from '../../src/bench/cost.js';
import type { NodeHandle } from '../../src/bench/nodes.js';
import { natsUrl, redisUrl } from '../support/servers.js';

const COMMANDSTATS = [
  '# Commandstats',
  'cmdstat_evalsha:calls=240,usec=38400,usec_per_call=160.00,rejected_calls=0,failed_calls=0',
  'cmdstat_fcall:calls=10,usec=600,usec_per_call=60.00,rejected_calls=0,failed_calls=0',
  'cmdstat_zadd:calls=700,usec=1400,usec_per_call=2.00,rejected_calls=0,failed_calls=0',
  'cmdstat_hgetall:calls=560,usec=1680,usec_per_call=3.00,rejected_calls=0,failed_calls=0',
  'cmdstat_info:calls=99,usec=9900,usec_per_call=100.00,rejected_calls=0,failed_calls=0',
  'cmdstat_client|setname:calls=4,usec=4,usec_per_call=1.00,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

describe('Redis INFO parsing', () => {
  it('reads the CPU fields and the command stats', () => {
    const info = parseInfo('# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\n\r\n');
    expect(redisCpuSeconds(info)).toBeCloseTo(3.75, 6);
    expect(redisCpuSeconds(parseInfo('# CPU\r\n'))).toBeNull();
    const stats = parseCommandStats(COMMANDSTATS);
    expect(stats.get('evalsha')).toEqual({ calls: 240, usec: 38400 });
    expect(stats.get('client|setname')).toEqual({ calls: 4, usec: 4 });
    expect(stats.size).toBe(6);
  });

  it('counts per dispatch: all commands, script calls apart, INFO left out, most frequent first', () => {
    const before = parseCommandStats('cmdstat_zadd:calls=100,usec=200\r\ncmdstat_info:calls=1,usec=100');
    const after = parseCommandStats(COMMANDSTATS);
    const c = commandsPerDispatch(before, after, 100);
    // (240 + 10) scripts, (700 - 100) zadd, 560 hgetall, 4 client|setname over 100 dispatches.
    expect(c.total).toBeCloseTo(14.14, 2);
    expect(c.scripts).toBe(2.5);
    expect(c.script_usec_per_call).toBeCloseTo((38400 + 600) / 250, 1);
    expect(c.top.map((t) => t.command)).toEqual(['zadd', 'hgetall', 'client|setname']);
    expect(c.top[0]).toEqual({ command: 'zadd', per_dispatch: 6, usec_per_call: 2 });
    // A counter that went backwards (CONFIG RESETSTAT) counts from the reset.
    const reset = commandsPerDispatch(after, parseCommandStats('cmdstat_zadd:calls=50,usec=100'), 10);
    expect(reset).toEqual({
      total: 5,
      scripts: 0,
      script_usec_per_call: null,
      top: [{ command: 'zadd', per_dispatch: 5, usec_per_call: 2 }],
    });
  });
});

describe('local processes', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    port = typeof addr === 'object' && addr ? addr.port : 0;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it.runIf(process.platform === 'linux')(
    'finds the process listening on a port and reads its CPU',
    async () => {
      const found = await findListenerProcess(port);
      expect(found?.pid).toBe(process.pid);
      expect(found?.comm).toMatch(/node/);
      const before = await procCpuMicros(process.pid);
      expect(before).toBeGreaterThan(0);
      // Burn CPU until the kernel's tick counter moves (it counts in 10 ms steps).
      let after = before;
      while (after === before) {
        for (let i = 0; i < 1e6; i++) Math.sqrt(i);
        after = await procCpuMicros(process.pid);
      }
      expect(after).toBeGreaterThan(before!);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      expect(await findListenerProcess(port)).toBeNull();
      expect(await procCpuMicros(2 ** 22 + 12345)).toBeNull();
    },
  );
});

/** A stand-in node process that reports the CPU figures it is given, one per request. */
function fakeNode(id: string, answers: (NodeJS.CpuUsage | null)[]): NodeHandle {
  return { id, cpuUsage: () => Promise.resolve(answers.shift() ?? null) } as unknown as NodeHandle;
}

describe('cost meter', () => {
  it('charges Redis, nodes and the coordinator for the phase only, and says what it could not measure', async () => {
    const redis = await redisUrl();
    const client = new Redis(redis);
    try {
      const meter = await CostMeter.begin({
        redis,
        nats: null,
        nodes: [
          fakeNode('node-1', [
            { user: 1000, system: 500 },
            { user: 21_000, system: 10_500 },
          ]),
          fakeNode('node-2', [{ user: 1, system: 1 }, null]),
        ],
      });
      for (let i = 0; i < 20; i++) await client.set(`bench-cost-test-${process.pid}`, String(i));
      await client.del(`bench-cost-test-${process.pid}`);
      const cost = await meter.end(10);
      // node-1: (21 000 + 10 500 − 1 000 − 500) µs over 10 dispatches; node-2 did not answer.
      expect(cost.cpu_us_per_dispatch.nodes).toBe(3000);
      expect(cost.cpu_us_per_dispatch.nats).toBeNull();
      expect(cost.cpu_us_per_dispatch.coordinator).toBeGreaterThanOrEqual(0);
      expect(cost.cpu_us_per_dispatch.redis).toBeGreaterThanOrEqual(0);
      // The server is shared with other tests: at least our 20 SETs, maybe more.
      const set = cost.redis_commands_per_dispatch?.top.find((t) => t.command === 'set');
      expect(set?.per_dispatch).toBeGreaterThanOrEqual(2);
      expect(cost.redis_commands_per_dispatch!.total).toBeGreaterThanOrEqual(2.1);
      expect(cost.notes.join('\n')).toMatch(/node-2 did not report its CPU/);
      expect(cost.notes.join('\n')).toMatch(/deltas of the whole server/);
    } finally {
      client.disconnect();
    }
  });

  it('nodes inside the coordinator, no Redis: only the coordinator figure', async () => {
    const meter = await CostMeter.begin({ redis: null, nats: null, nodes: null });
    const cost = await meter.end(5);
    expect(cost.cpu_us_per_dispatch).toMatchObject({ redis: null, nats: null, nodes: null });
    expect(cost.redis_commands_per_dispatch).toBeNull();
    expect(cost.notes).toEqual([
      'the nodes run inside the coordinator process: their CPU is in the coordinator figure',
    ]);
  });

  it('measures nats-server when it can, and otherwise says why not', async () => {
    const meter = await CostMeter.begin({ redis: null, nats: await natsUrl(), nodes: null });
    const cost = await meter.end(1);
    if (cost.cpu_us_per_dispatch.nats === null) {
      expect(cost.notes.join('\n')).toMatch(/nats-server CPU/);
    } else {
      expect(cost.cpu_us_per_dispatch.nats).toBeGreaterThanOrEqual(0);
      expect(cost.notes.join('\n')).toMatch(/nats-server figure is a delta of the whole server/);
    }
  });

  it('a Redis that does not answer leaves the Redis figures null with a note', async () => {
    const meter = await CostMeter.begin({ redis: 'redis://127.0.0.1:1', nats: null, nodes: [] });
    const cost = await meter.end(1);
    expect(cost.cpu_us_per_dispatch.redis).toBeNull();
    expect(cost.cpu_us_per_dispatch.nodes).toBe(0);
    expect(cost.redis_commands_per_dispatch).toBeNull();
    expect(cost.notes.join('\n')).toMatch(/Redis CPU and commands unknown/);
  });
});

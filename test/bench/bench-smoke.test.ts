/**
 * `awaken-mailbox bench` end to end, as separate processes: the memory smoke, Redis + JetStream with a node
 * SIGKILLed mid-run, Redis Streams with the HTML report and the BullMQ and GroupMQ baselines, and usage errors.
 * Every run reports what it cost per dispatch.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsUrl, redisUrl } from '../support/servers.js';
import { runCli as run } from './helpers.js';
import type { Run } from './helpers.js';

interface BenchJson {
  backend: string;
  nodes: number;
  node_mode: string;
  dispatches: number;
  completed: number;
  superseded: number;
  dead_letters: number;
  throughput_per_s: number;
  enqueue_to_start_ms: { p50: number; p99: number; count: number };
  live_rtt_ms: { p50: number; p99: number; sent: number; delivered: number };
  invariants: Record<string, number | boolean>;
  killed_node: { node: string; in_flight: number } | null;
  per_node: { node: string; executions: number; killed: boolean }[];
  cpu_us_per_dispatch: Record<'redis' | 'nats' | 'coordinator' | 'nodes', number | null>;
  redis_commands_per_dispatch: { total: number; scripts: number; top: { command: string }[] } | null;
  cost_notes: string[];
  errors: string[];
}

function parseBench(r: Run): BenchJson {
  const lines = r.stdout.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1); // --json prints exactly one object
  return JSON.parse(lines[0]!) as BenchJson;
}

function expectCleanInvariants(json: BenchJson): void {
  expect(json.invariants).toMatchObject({
    lost: 0,
    duplicated_runs: 0,
    exclusivity_violations: 0,
    count_mismatches: 0,
    acked_without_execution: 0,
    ok: true,
  });
}

let redis: string;
let nats: string;
let tmp: string;

beforeAll(async () => {
  [redis, nats] = await Promise.all([redisUrl(), natsUrl()]);
  tmp = mkdtempSync(join(tmpdir(), 'awaken-bench-cli-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('bench', () => {
  it('memory backend: 200 dispatches, exit 0, every invariant holds', async () => {
    const r = await run(['bench', '--backend', 'memory', '--dispatches', '200', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = parseBench(r);
    expect(json).toMatchObject({ backend: 'memory', node_mode: 'in-process', dispatches: 200 });
    expect(json.completed + json.superseded + json.dead_letters).toBe(200);
    expect(json.throughput_per_s).toBeGreaterThan(0);
    expect(json.enqueue_to_start_ms.count).toBeGreaterThan(0);
    expect(json.enqueue_to_start_ms.p99).toBeGreaterThanOrEqual(json.enqueue_to_start_ms.p50);
    expectCleanInvariants(json);
    expect(r.stderr).toMatch(/in-process/);
    // In-process nodes: their CPU is the coordinator's; no Redis, no NATS.
    expect(json.cpu_us_per_dispatch).toMatchObject({ redis: null, nats: null, nodes: null });
    expect(json.cpu_us_per_dispatch.coordinator).toBeGreaterThan(0);
    expect(json.redis_commands_per_dispatch).toBeNull();
    expect(r.stdout).not.toMatch(/"baseline"/);
  });

  it('redis + jetstream: 2 node processes, one SIGKILLed mid-run, nothing lost', async () => {
    const r = await run(
      [
        'bench',
        '--backend',
        'redis',
        '--redis',
        redis,
        '--nats',
        nats,
        '--nodes',
        '2',
        '--dispatches',
        '300',
      ].concat(['--kill-node-at', '50%', '--lease-ms', '1000', '--live-rate', '0.05', '--json']),
      { timeoutMs: 90_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const json = parseBench(r);
    expect(json).toMatchObject({
      backend: 'redis+jetstream',
      nodes: 2,
      node_mode: 'process',
      dispatches: 300,
    });
    expect(json.killed_node).not.toBeNull();
    expect(json.per_node.filter((n) => n.killed)).toHaveLength(1);
    expect(json.per_node.every((n) => n.executions > 0)).toBe(true);
    expect(json.live_rtt_ms.delivered).toBeLessThanOrEqual(json.live_rtt_ms.sent);
    expectCleanInvariants(json);
    expect(json.errors).toEqual([]);
    expect(json.cpu_us_per_dispatch.redis).toBeGreaterThan(0);
    expect(json.cpu_us_per_dispatch.nodes).toBeGreaterThan(0);
    expect(json.redis_commands_per_dispatch!.scripts).toBeGreaterThan(0);
    // The killed node cannot report its CPU: the figure says so instead of silently undercounting.
    expect(json.cost_notes.join('\n')).toMatch(/did not report its CPU/);
  }, 120_000);

  it('redis streams + bullmq and groupmq baselines: HTML report, ratios, costs, and no keys left behind', async () => {
    const report = join(tmp, 'report.html');
    const r = await run(
      [
        'bench',
        '--backend',
        'redis',
        '--redis',
        redis,
        '--no-nats',
        '--nodes',
        '2',
        '--dispatches',
        '150',
      ].concat(['--baseline', 'bullmq,groupmq', '--report', report, '--json']),
      { timeoutMs: 90_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    interface Peer {
      name: string;
      dispatches: number;
      completed: number;
      throughput_per_s: number;
      ratio: number;
    }
    const json = parseBench(r) as BenchJson & {
      baseline: Peer;
      baselines: (Peer & Pick<BenchJson, 'cpu_us_per_dispatch' | 'redis_commands_per_dispatch'>)[];
    };
    expect(json.backend).toBe('redis+redis-streams');
    expectCleanInvariants(json);
    expect(json.baseline).toMatchObject({ name: 'bullmq', dispatches: 150, completed: 150 });
    expect(json.baseline.throughput_per_s).toBeGreaterThan(0);
    expect(json.baseline.ratio).toBeCloseTo(json.throughput_per_s / json.baseline.throughput_per_s, 1);
    expect(json.baseline).not.toHaveProperty('cpu_us_per_dispatch'); // `baseline` keeps its old shape
    expect(json.baselines.map((b) => b.name)).toEqual(['bullmq', 'groupmq']);
    for (const b of json.baselines) {
      expect(b).toMatchObject({ dispatches: 150, completed: 150 });
      expect(b.ratio).toBeCloseTo(json.throughput_per_s / b.throughput_per_s, 1);
      expect(b.cpu_us_per_dispatch.redis).toBeGreaterThan(0);
      expect(b.cpu_us_per_dispatch.nodes).toBeGreaterThan(0);
      expect(b.cpu_us_per_dispatch.nats).toBeNull(); // the peers do not use NATS
      expect(b.redis_commands_per_dispatch!.scripts).toBeGreaterThan(0);
    }
    expect(json.baselines[0]).toMatchObject({ ...json.baseline });
    expect(json.cpu_us_per_dispatch.nats).toBeNull(); // --no-nats
    expect(json.cpu_us_per_dispatch.redis).toBeGreaterThan(0);
    expect(json.redis_commands_per_dispatch!.total).toBeGreaterThan(
      json.redis_commands_per_dispatch!.scripts,
    );
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('BullMQ baseline');
    expect(html).toContain('GroupMQ baseline');
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]*\ssrc\s*=/i);
    const namespace = /namespace (bench-[a-z0-9-]+)/.exec(r.stderr)?.[1];
    expect(namespace).toBeDefined();
    const { Redis } = await import('ioredis');
    const client = new Redis(redis);
    try {
      const [, keys] = await client.scan('0', 'MATCH', `*${namespace!}*`, 'COUNT', 100_000);
      expect(keys).toEqual([]); // the run's namespace and the peers' prefixes are all gone
    } finally {
      client.disconnect();
    }
  }, 90_000);

  it('rejects bad usage with exit code 2 and names the option', async () => {
    const r = await run(['bench', '--nodes', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--nodes/);
    const unknown = await run(['bench', '--frobnicate']);
    expect(unknown.code).toBe(2);
    const memoryKill = await run(['bench', '--backend', 'memory', '--kill-node-at', '10']);
    expect(memoryKill.code).toBe(2);
    expect(memoryKill.stderr).toMatch(/node processes/);
  });
});

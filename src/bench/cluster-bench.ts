/**
 * The bench on a Redis Cluster: `--local-cluster` starts a 6-node Redis Cluster (3 masters, 3 replicas) and,
 * unless NATS is off, a 3-node JetStream cluster on this machine for the run and stops them afterwards; with
 * `--redis-cluster` the user's cluster is used. Either way each master's share of the Redis commands executed
 * and of the CPU spent during the run is measured (INFO commandstats and INFO cpu of every master, before
 * and after) and reported: with a partitioned namespace the load should spread over the masters.
 */
import { Redis } from 'ioredis';
import type { ProgressStream } from './progress.js';
import { hostPort } from './backend.js';
import { parseInfo, redisCpuSeconds } from './cost.js';
import { startClusters } from './local-cluster.js';
import type { BenchOptions } from './options.js';

/** What one master did during the run. */
export interface MasterShare {
  /** `host:port`. */
  node: string;
  /** Commands the node executed (commands run inside scripts included; INFO excluded). */
  commands: number;
  /** Its share of the commands of all masters, 0..1. */
  command_share: number;
  /** CPU seconds the node's process used (user + system). */
  cpu_s: number;
  cpu_share: number;
}

interface Sample {
  commands: number;
  cpu: number;
}

async function withNode<T>(node: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const { host, port } = hostPort(node, 6379);
  const r = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** `host:port` of every master a seed knows of (CLUSTER NODES). */
async function masterNodes(seeds: readonly string[]): Promise<string[]> {
  let last: unknown = null;
  for (const seed of seeds) {
    try {
      const text = await withNode(seed, (r) => r.call('CLUSTER', 'NODES') as Promise<string>);
      return text
        .split('\n')
        .map((line) => line.split(' '))
        .filter((f) => f.length > 2 && (f[2] ?? '').includes('master') && !(f[2] ?? '').includes('fail'))
        .map((f) => (f[1] ?? '').split('@')[0] as string)
        .filter((n) => n.length > 0)
        .sort();
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no seed of the Redis Cluster answered CLUSTER NODES: ${String(last)}`);
}

async function sample(node: string): Promise<Sample | null> {
  try {
    return await withNode(node, async (r) => {
      const info = parseInfo(await r.info('all'));
      let commands = 0;
      for (const [field, value] of info) {
        if (!field.startsWith('cmdstat_') || field === 'cmdstat_info') continue;
        const calls = /calls=(\d+)/.exec(value);
        if (calls) commands += Number(calls[1]);
      }
      return { commands, cpu: redisCpuSeconds(info) ?? 0 };
    });
  } catch {
    return null;
  }
}

/** Samples every master before and after a run. */
export class ClusterShareMeter {
  private constructor(
    private readonly seeds: readonly string[],
    private readonly start: Map<string, Sample>,
  ) {}

  static async begin(seeds: readonly string[]): Promise<ClusterShareMeter> {
    const start = new Map<string, Sample>();
    for (const node of await masterNodes(seeds)) {
      const s = await sample(node);
      if (s) start.set(node, s);
    }
    return new ClusterShareMeter(seeds, start);
  }

  /** Per master (the masters at the start and at the end of the run), in node order. */
  async end(): Promise<MasterShare[]> {
    const nodes = new Set([...this.start.keys(), ...(await masterNodes(this.seeds).catch(() => []))]);
    const deltas: { node: string; commands: number; cpu: number }[] = [];
    for (const node of [...nodes].sort()) {
      const after = await sample(node);
      const before = this.start.get(node) ?? { commands: 0, cpu: 0 };
      // A node restarted meanwhile has counters below the start: count what it did since.
      const commands = after
        ? Math.max(0, after.commands - (after.commands >= before.commands ? before.commands : 0))
        : 0;
      const cpu = after ? Math.max(0, after.cpu - (after.cpu >= before.cpu ? before.cpu : 0)) : 0;
      deltas.push({ node, commands, cpu });
    }
    const totalCommands = deltas.reduce((a, d) => a + d.commands, 0);
    const totalCpu = deltas.reduce((a, d) => a + d.cpu, 0);
    return deltas.map((d) => ({
      node: d.node,
      commands: d.commands,
      command_share: totalCommands > 0 ? d.commands / totalCommands : 0,
      cpu_s: Math.round(d.cpu * 1000) / 1000,
      cpu_share: totalCpu > 0 ? d.cpu / totalCpu : 0,
    }));
  }
}

/** A table of the shares, one master a line. */
export function formatShares(shares: readonly MasterShare[]): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`.padStart(8);
  const lines = ['Redis Cluster masters (share of the run):', '  node                   commands      cpu'];
  for (const s of shares) {
    lines.push(
      `  ${s.node.padEnd(20)} ${pct(s.command_share)} ${pct(s.cpu_share)}   (${s.commands} commands, ${s.cpu_s} s cpu)`,
    );
  }
  return lines.join('\n');
}

/**
 * Run `body` with `opts` pointed at a local Redis Cluster (and JetStream cluster unless NATS is off), started
 * here and stopped afterwards whatever happens.
 */
export async function withLocalCluster<T>(
  opts: BenchOptions,
  stderr: ProgressStream,
  body: (opts: BenchOptions) => Promise<T>,
): Promise<T> {
  stderr.write(
    'bench: starting a local Redis Cluster (3 masters, 3 replicas)' +
      (opts.nats === null ? '' : ' and a 3-node JetStream cluster') +
      '\n',
  );
  const started = Date.now();
  const { redis, nats } = await startClusters(opts.nats !== null);
  try {
    stderr.write(
      `bench: local cluster ready in ${Date.now() - started} ms: redis ${redis.seeds.join(',')}` +
        (nats ? `; nats ${nats.urls.join(',')}` : '') +
        '\n',
    );
    return await body({
      ...opts,
      redisCluster: redis.seeds,
      redis: redis.seeds[0] as string,
      redisSource: '--redis',
      ...(nats ? { nats: nats.urls[0] as string, natsExplicit: true } : {}),
    });
  } finally {
    await Promise.all([redis.stop(), nats?.stop()]);
  }
}

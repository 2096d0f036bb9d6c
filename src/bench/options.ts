/**
 * `awaken-mailbox bench` options: the raw strings commander hands over, validated into `BenchOptions`. Every bad
 * value is a `StorageError` of kind Validation naming the option.
 */
import { StorageError } from '../contract/errors.js';
import { DEFAULT_MAILBOX_CONFIG } from '../mailbox/config.js';
import { MAX_PARTITIONS } from '../redis/keys.js';
import { defaultNatsUrl, defaultRedisUrl } from './backend.js';
import type { SignalsKind } from './backend.js';
import type { ProgressMode } from './progress.js';
import { BASELINE_NAMES } from './results.js';
import type { BaselineName } from './results.js';
import { parseRunMs } from './run-ms.js';
import type { RunMsDistribution } from './run-ms.js';

/** When to SIGKILL a node: after N completed dispatches, after a fraction of them, or after a time. */
export type KillAt =
  { kind: 'count'; n: number } | { kind: 'fraction'; f: number } | { kind: 'time'; ms: number };

export interface BenchOptions {
  backend: 'memory' | 'redis' | 'auto';
  redis: string;
  /**
   * Who named the Redis server: `--redis`, `$REDIS_URL`, or null (the built-in default). A named server that
   * does not answer is an error; only the default falls back to the memory store.
   */
  redisSource: '--redis' | '$REDIS_URL' | null;
  /** null: NATS disabled (`--no-nats`). */
  nats: string | null;
  natsExplicit: boolean;
  signals: SignalsKind | null;
  nodes: number;
  threads: number;
  /** Exactly one of `dispatches` / `durationMs` is set. */
  dispatches: number | null;
  durationMs: number | null;
  /** Submissions per second; null = as fast as possible. */
  rate: number | null;
  /** Most submitted-but-not-terminal dispatches at once; null = unbounded. */
  maxPending: number | null;
  /**
   * Dispatches enqueued this long after the first one count in the steady-state enqueue→start histogram
   * (`enqueue_to_start_after_warmup_ms`); 0 = no second histogram. The overall one always counts everything.
   */
  warmupMs: number;
  runMs: RunMsDistribution;
  runMsSpec: string;
  failRate: number;
  interruptRate: number;
  liveRate: number;
  killNodeAt: KillAt | null;
  leaseMs: number;
  maxAttempts: number;
  retryDelayMs: number;
  /** The Mailboxes' `liveSubscriptionLingerMs`. */
  liveLingerMs: number;
  /** The Mailboxes' `epochPollIntervalMs`. */
  epochPollMs: number;
  /** How long to wait for the last dispatches to finish once submission is over. */
  drainTimeoutMs: number;
  json: boolean;
  report: string | null;
  /** The first of `baselines`, or null. */
  baseline: BaselineName | null;
  /** `--baseline bullmq,groupmq`: the peers to run the same workload through, in order, without repeats. */
  baselines: BaselineName[];
  progress: ProgressMode;
  /** `--partitions`: partitions of the run's namespace (1 = the single-slot layout). */
  partitions: number;
  /** `--redis-cluster`: seed URLs of a Redis Cluster, or null (single Redis at `redis`). */
  redisCluster: string[] | null;
  /** `--local-cluster`: start a 6-node Redis Cluster (and a 3-node JetStream cluster) on this machine. */
  localCluster: boolean;
  durability: 'async' | 'replicated';
  /** `--jetstream-replicas`: copies of the JetStream signal stream (3 on a NATS cluster). */
  jetstreamReplicas: 1 | 3;
  /** `--quiet-claimed-threads`: the stores' `quietClaimedThreads` (no signal for an enqueue behind a claim). */
  quietClaimedThreads: boolean;
}

export interface RawBenchOptions {
  backend?: string;
  redis?: string;
  nats?: string | boolean;
  signals?: string;
  nodes?: string;
  threads?: string;
  dispatches?: string;
  duration?: string;
  rate?: string;
  maxPending?: string;
  warmup?: string;
  runMs?: string;
  failRate?: string;
  interruptRate?: string;
  liveRate?: string;
  killNodeAt?: string;
  leaseMs?: string;
  maxAttempts?: string;
  retryDelayMs?: string;
  liveLingerMs?: string;
  epochPollMs?: string;
  drainTimeout?: string;
  json?: boolean;
  report?: string;
  baseline?: string;
  progress?: string;
  partitions?: string;
  redisCluster?: string;
  localCluster?: boolean;
  durability?: string;
  jetstreamReplicas?: string;
  quietClaimedThreads?: boolean;
}

export const BENCH_DEFAULTS = {
  nodes: 2,
  threads: 64,
  dispatches: 5000,
  runMs: 'fixed:2',
  failRate: 0.01,
  interruptRate: 0.002,
  liveRate: 0.02,
  leaseMs: 2000,
  maxAttempts: 5,
  retryDelayMs: 50,
  liveLingerMs: DEFAULT_MAILBOX_CONFIG.liveSubscriptionLingerMs,
  epochPollMs: DEFAULT_MAILBOX_CONFIG.epochPollIntervalMs,
  drainTimeoutMs: 120_000,
} as const;

const bad = (option: string, why: string): StorageError => StorageError.validation(`--${option} ${why}`);

function integer(
  option: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (text === undefined) return fallback;
  const n = Number(text.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw bad(option, `must be an integer in ${min}..${max}, got '${text}'`);
  return n;
}

function probability(option: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw bad(option, `must be a probability in 0..1, got '${text}'`);
  return n;
}

/** `500ms`, `10s`, `2m`, or a plain number of seconds. */
export function parseDurationMs(option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw bad(option, `must be a duration like 500ms, 10s or 2m, got '${text}'`);
  const value = Number(m[1]);
  const ms = m[2] === 'ms' ? value : m[2] === 'm' ? value * 60_000 : value * 1000;
  if (!(ms > 0) || !Number.isFinite(ms)) throw bad(option, `must be positive, got '${text}'`);
  return Math.round(ms);
}

/** `150` (completed dispatches), `50%` (of the dispatches), `2s` / `1500ms` (after the start). */
export function parseKillAt(text: string): KillAt {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (!Number.isSafeInteger(n)) throw bad('kill-node-at', `is too large: '${text}'`);
    return { kind: 'count', n };
  }
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) {
    const f = Number(pct[1]) / 100;
    if (!(f >= 0 && f <= 1)) throw bad('kill-node-at', `percentage must be within 0..100, got '${text}'`);
    return { kind: 'fraction', f };
  }
  if (/^\d+(?:\.\d+)?(ms|s|m)$/.test(t)) return { kind: 'time', ms: parseDurationMs('kill-node-at', t) };
  throw bad('kill-node-at', `must be a count (150), a percentage (50%) or a time (2s), got '${text}'`);
}

/** `bullmq`, `groupmq`, `bullmq,groupmq` (order kept, repeats dropped). */
export function parseBaselines(text: string | undefined): BaselineName[] {
  if (text === undefined) return [];
  const names: BaselineName[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    if (!(BASELINE_NAMES as readonly string[]).includes(part)) {
      throw bad(
        'baseline',
        `must be one of ${BASELINE_NAMES.join(', ')} or a comma-separated list of them, got '${text}'`,
      );
    }
    if (!names.includes(part as BaselineName)) names.push(part as BaselineName);
  }
  return names;
}

function oneOf<T extends string>(option: string, text: string | undefined, allowed: readonly T[]): T | null {
  if (text === undefined) return null;
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw bad(option, `must be one of ${allowed.join(', ')}, got '${text}'`);
}

/** `--partitions`, `--redis-cluster`, `--local-cluster`, `--durability`, checked against each other. */
function clusterOptions(
  raw: RawBenchOptions,
  backend: BenchOptions['backend'],
  withBaseline: boolean,
): Pick<BenchOptions, 'partitions' | 'redisCluster' | 'localCluster' | 'durability' | 'jetstreamReplicas'> {
  const partitions = integer('partitions', raw.partitions, 1, 1, MAX_PARTITIONS);
  const durability = oneOf('durability', raw.durability, ['async', 'replicated'] as const) ?? 'async';
  const localCluster = raw.localCluster === true;
  let redisCluster: string[] | null = null;
  if (raw.redisCluster !== undefined) {
    redisCluster = raw.redisCluster
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u.length > 0);
    if (redisCluster.length === 0) throw bad('redis-cluster', 'needs at least one seed URL');
    for (const seed of redisCluster) {
      if (!/^(rediss?:\/\/)?[^/\s,]+:\d{1,5}\/?$/.test(seed)) {
        throw bad('redis-cluster', `takes redis://host:port seed URLs separated by commas, got '${seed}'`);
      }
    }
  }
  const flag = localCluster ? 'local-cluster' : 'redis-cluster';
  if (redisCluster !== null && localCluster) {
    throw bad('local-cluster', 'starts its own cluster; it cannot be combined with --redis-cluster');
  }
  if (redisCluster !== null || localCluster) {
    if (raw.redis !== undefined) throw bad(flag, 'replaces --redis; give one of them');
    if (backend === 'memory') throw bad(flag, 'needs the redis backend');
    if (withBaseline)
      throw bad('baseline', 'runs on a single Redis; it cannot be combined with a Redis Cluster');
  }
  const replicas = oneOf('jetstream-replicas', raw.jetstreamReplicas, ['1', '3'] as const);
  // A local cluster runs a 3-node JetStream cluster: its signal stream gets 3 replicas unless told otherwise.
  const jetstreamReplicas = replicas === null ? (localCluster ? 3 : 1) : replicas === '3' ? 3 : 1;
  return { partitions, redisCluster, localCluster, durability, jetstreamReplicas };
}

export function parseBenchOptions(raw: RawBenchOptions, env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const backend = oneOf('backend', raw.backend, ['memory', 'redis', 'auto'] as const) ?? 'auto';
  const signals = oneOf('signals', raw.signals, ['jetstream', 'redis-streams', 'none'] as const);
  const nodes = integer('nodes', raw.nodes, BENCH_DEFAULTS.nodes, 1, 64);
  const threads = integer('threads', raw.threads, BENCH_DEFAULTS.threads, 1, 1_000_000);
  if (raw.dispatches !== undefined && raw.duration !== undefined) {
    throw StorageError.validation('--dispatches and --duration are exclusive: give one of them');
  }
  const durationMs = raw.duration !== undefined ? parseDurationMs('duration', raw.duration) : null;
  const dispatches =
    durationMs === null ? integer('dispatches', raw.dispatches, BENCH_DEFAULTS.dispatches, 1) : null;
  const rate = raw.rate !== undefined ? integer('rate', raw.rate, 0, 1) : null;
  const warmupMs = raw.warmup !== undefined ? parseDurationMs('warmup', raw.warmup) : 0;
  const maxPending =
    raw.maxPending !== undefined
      ? integer('max-pending', raw.maxPending, 0, 1)
      : durationMs !== null
        ? threads * 16
        : null;
  const runMsSpec = raw.runMs ?? BENCH_DEFAULTS.runMs;
  let runMs: RunMsDistribution;
  try {
    runMs = parseRunMs(runMsSpec);
  } catch (err) {
    throw bad('run-ms', (err as Error).message.replace(/^validation error: /, ''));
  }
  const killNodeAt = raw.killNodeAt !== undefined ? parseKillAt(raw.killNodeAt) : null;
  if (killNodeAt && nodes < 2)
    throw bad('kill-node-at', 'needs at least 2 nodes (--nodes 2), so one survives to reclaim');
  if (killNodeAt && backend === 'memory') {
    throw bad(
      'kill-node-at',
      'needs node processes; the memory backend runs its nodes in-process (use --backend redis)',
    );
  }
  const nats = raw.nats === false ? null : typeof raw.nats === 'string' ? raw.nats : defaultNatsUrl(env);
  const baselines = parseBaselines(raw.baseline);
  const baseline = baselines[0] ?? null;
  if (baseline && backend === 'memory')
    throw bad('baseline', 'runs on Redis; it cannot be combined with --backend memory');
  const cluster = clusterOptions(raw, backend, baseline !== null);
  return {
    ...cluster,
    backend: cluster.redisCluster !== null || cluster.localCluster ? 'redis' : backend,
    // With a cluster, `redis` is its first seed: what the reachability probe and the cost meter look at.
    redis: cluster.redisCluster?.[0] ?? raw.redis ?? defaultRedisUrl(env),
    redisSource:
      cluster.redisCluster !== null || raw.redis !== undefined
        ? '--redis'
        : env.REDIS_URL
          ? '$REDIS_URL'
          : null,
    nats,
    natsExplicit: typeof raw.nats === 'string',
    signals,
    nodes,
    threads,
    dispatches,
    durationMs,
    rate,
    warmupMs,
    maxPending,
    runMs,
    runMsSpec,
    failRate: probability('fail-rate', raw.failRate, BENCH_DEFAULTS.failRate),
    interruptRate: probability('interrupt-rate', raw.interruptRate, BENCH_DEFAULTS.interruptRate),
    liveRate: probability('live-rate', raw.liveRate, BENCH_DEFAULTS.liveRate),
    killNodeAt,
    leaseMs: integer('lease-ms', raw.leaseMs, BENCH_DEFAULTS.leaseMs, 100, 3_600_000),
    maxAttempts: integer('max-attempts', raw.maxAttempts, BENCH_DEFAULTS.maxAttempts, 1, 1000),
    retryDelayMs: integer('retry-delay-ms', raw.retryDelayMs, BENCH_DEFAULTS.retryDelayMs, 1, 3_600_000),
    liveLingerMs: integer('live-linger-ms', raw.liveLingerMs, BENCH_DEFAULTS.liveLingerMs, 0, 3_600_000),
    epochPollMs: integer('epoch-poll-ms', raw.epochPollMs, BENCH_DEFAULTS.epochPollMs, 0, 3_600_000),
    drainTimeoutMs:
      raw.drainTimeout !== undefined
        ? parseDurationMs('drain-timeout', raw.drainTimeout)
        : BENCH_DEFAULTS.drainTimeoutMs,
    json: raw.json === true,
    report: raw.report ?? null,
    baseline,
    baselines,
    progress: oneOf('progress', raw.progress, ['auto', 'tty', 'lines', 'off'] as const) ?? 'auto',
    quietClaimedThreads: raw.quietClaimedThreads === true,
  };
}

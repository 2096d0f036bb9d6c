/**
 * Which store a bench run uses, how to reach it, and the default choice: Redis + NATS when both answer at the
 * given (or default) URLs, Redis alone (Redis Streams signals) when only Redis answers, else the memory store —
 * but only when no Redis was named: a Redis given by `--redis` or `$REDIS_URL` that does not answer is an error.
 */
import type { MailboxStore } from '../contract/store.js';
import { tcpProbe } from '../util/tcp-probe.js';

export type SignalsKind = 'jetstream' | 'redis-streams' | 'none';

export type BackendSpec =
  | { kind: 'memory' }
  | { kind: 'redis'; redis: string; nats: string | null; signals: SignalsKind; namespace: string };

/** A distributed store also offers `destroyNamespace()` (teardown of everything the run created). */
export interface BenchStore extends MailboxStore {
  destroyNamespace?(): Promise<void>;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export function defaultRedisUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.REDIS_URL || DEFAULT_REDIS_URL;
}

export function defaultNatsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.NATS_URL || DEFAULT_NATS_URL;
}

export function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `tcp://${url}`;
  const parsed = new URL(withScheme);
  const host = parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = parsed.port ? Number(parsed.port) : defaultPort;
  return { host, port };
}

/** True when something at `url` answers a Redis PING (an auth error still means "a Redis is there"). */
export async function redisReachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = hostPort(url, 6379);
  const reply = await tcpProbe(host, port, 'PING\r\n', timeoutMs);
  return (
    reply !== null && (reply.startsWith('+PONG') || reply.startsWith('-NOAUTH') || reply.startsWith('-ERR'))
  );
}

/** The INFO a NATS server greets every client with, or null. */
export async function natsInfo(url: string, timeoutMs = 1000): Promise<Record<string, unknown> | null> {
  const { host, port } = hostPort(url, 4222);
  const greeting = await tcpProbe(host, port, null, timeoutMs);
  if (!greeting || !greeting.startsWith('INFO ')) return null;
  const end = greeting.indexOf('\r\n');
  try {
    const info: unknown = JSON.parse(greeting.slice(5, end === -1 ? undefined : end));
    return typeof info === 'object' && info !== null ? (info as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export interface BackendChoice {
  spec: BackendSpec;
  /** One sentence for the user: what was chosen and why. */
  reason: string;
}

export interface ChooseBackendInput {
  backend: 'memory' | 'redis' | 'auto';
  redis: string;
  /** Who named `redis` (`--redis`, `$REDIS_URL`); null or absent: the built-in default. */
  redisSource?: string | null;
  /** null: do not use NATS at all (`--no-nats`). */
  nats: string | null;
  /** Explicit `--signals`, if given. */
  signals: SignalsKind | null;
  /** Whether `--nats` was given explicitly (then it must answer). */
  natsExplicit: boolean;
  namespace: string;
}

/**
 * Probe the servers and pick the backend (see the module comment). NATS, when it answers, carries live commands
 * whatever the signal transport. Throws with a clear message when an explicit choice cannot work.
 */
export async function chooseBackend(input: ChooseBackendInput): Promise<BackendChoice> {
  if (input.backend === 'memory')
    return { spec: { kind: 'memory' }, reason: 'memory backend (--backend memory)' };
  const redisUp = await redisReachable(input.redis);
  if (!redisUp) {
    if (input.backend === 'redis')
      throw new Error(`Redis is not reachable at ${input.redis} (--backend redis)`);
    if (input.redisSource) {
      throw new Error(
        `Redis is not reachable at ${input.redis} (given by ${input.redisSource}): start it or fix the URL, ` +
          'or use --backend memory',
      );
    }
    return { spec: { kind: 'memory' }, reason: `memory backend: Redis is not reachable at ${input.redis}` };
  }
  let nats: string | null = null;
  let natsNote = 'NATS disabled (--no-nats)';
  let jetstream = false;
  if (input.nats !== null) {
    const info = await natsInfo(input.nats);
    if (info) {
      nats = input.nats;
      jetstream = info.jetstream === true;
      natsNote = jetstream ? '' : `NATS at ${input.nats} has JetStream disabled`;
    } else {
      natsNote = `NATS is not reachable at ${input.nats}`;
      if (input.natsExplicit) throw new Error(`${natsNote} (--nats)`);
    }
  }
  if (input.signals === 'jetstream' && !jetstream)
    throw new Error(`--signals jetstream needs JetStream: ${natsNote}`);
  const signals: SignalsKind = input.signals ?? (jetstream ? 'jetstream' : 'redis-streams');
  const reason =
    `redis backend at ${input.redis}, signals ${signals}, ` +
    (nats ? `live commands over NATS at ${nats}` : 'no live commands') +
    (natsNote ? ` (${natsNote})` : '');
  return { spec: { kind: 'redis', redis: input.redis, nats, signals, namespace: input.namespace }, reason };
}

export interface OpenStoreOptions {
  /** How often the store's signal sweeper republishes (short in the bench so requeues are seen quickly). */
  sweepIntervalMs?: number;
  /** A Queued dispatch is signalled again when its last signal is older than this. */
  republishAfterMs?: number;
  /** Partitions of the namespace (`--partitions`; default 1). */
  partitions?: number;
  /** Seed URLs of a Redis Cluster (`--redis-cluster`): used instead of the spec's single Redis URL. */
  redisCluster?: string[];
  /** `--durability` (default async). */
  durability?: 'async' | 'replicated';
  /** Copies of the JetStream signal stream (3 on a NATS cluster; default 1). */
  jetstreamReplicas?: 1 | 3;
  /** The stores' `quietClaimedThreads` (`--quiet-claimed-threads`; default false). */
  quietClaimedThreads?: boolean;
}

/** Open a store for `spec`. The memory store is in-process: only the coordinator and in-process nodes can share it. */
export async function openStore(spec: BackendSpec, opts: OpenStoreOptions = {}): Promise<BenchStore> {
  if (spec.kind === 'memory') {
    const { MemoryMailboxStore } = await import('../memory/index.js');
    return new MemoryMailboxStore({
      ...(opts.sweepIntervalMs !== undefined ? { sweepIntervalMs: opts.sweepIntervalMs } : {}),
      ...(opts.republishAfterMs !== undefined ? { republishAfterMs: opts.republishAfterMs } : {}),
      ...(opts.quietClaimedThreads ? { quietClaimedThreads: true } : {}),
    });
  }
  const { createMailboxStore } = await import('../redis/create-store.js');
  return createMailboxStore({
    redis: opts.redisCluster ? { cluster: opts.redisCluster } : spec.redis,
    ...(opts.partitions !== undefined ? { partitions: opts.partitions } : {}),
    ...(opts.durability !== undefined ? { durability: opts.durability } : {}),
    ...(opts.jetstreamReplicas !== undefined ? { jetstream: { replicas: opts.jetstreamReplicas } } : {}),
    ...(spec.nats ? { nats: spec.nats } : {}),
    signals: spec.signals,
    namespace: spec.namespace,
    ...(opts.sweepIntervalMs !== undefined ? { sweepIntervalMs: opts.sweepIntervalMs } : {}),
    ...(opts.republishAfterMs !== undefined ? { republishAfterMs: opts.republishAfterMs } : {}),
    ...(opts.quietClaimedThreads ? { quietClaimedThreads: true } : {}),
  });
}

/**
 * Options of `createMailboxStore`, validated with zod: anything wrong is a `StorageError` kind
 * `Validation` naming the option, before a connection is opened.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { StorageError } from '../contract/errors.js';
import { describeZodError } from '../contract/schemas.js';
import type { Logger } from '../util/logger.js';
import { redact, urlSecrets } from './errors.js';
import { isCluster } from './cluster.js';
import { MAX_NAMESPACE_LENGTH, MAX_PARTITIONS, NAMESPACE_PATTERN } from './keys.js';

export type SignalsMode = 'jetstream' | 'redis-streams' | 'none';

/** Seed nodes of a Redis Cluster (`redis://host:port` or `rediss://…`); the rest is discovered. */
export interface RedisClusterSeeds {
  cluster: string[];
}

/**
 * `async`: a mutation is confirmed when its master has applied it (Redis's replication is asynchronous, so a
 * failover can lose the last writes). `replicated`: each mutation is also confirmed by at least one replica
 * (`WAIT 1`) or fails with `Io` saying it may have happened.
 */
export type Durability = 'async' | 'replicated';

export interface CreateMailboxStoreOptions {
  /**
   * `redis://[user:pass@]host[:port][/db]`, `rediss://…` (TLS) or a unix socket path (`/run/redis.sock`): the
   * store owns and closes that connection. `{ cluster: [seed urls] }`: a Redis Cluster the store connects to
   * (and closes). Or an ioredis instance or ioredis Cluster (left open on close).
   */
  redis: string | Redis | RedisClusterSeeds | Cluster;
  /**
   * Partitions of the namespace (default 1, the single-slot layout). Each partition is its own Redis Cluster
   * hash slot; a thread belongs to one partition for life. Fixed for the life of a namespace.
   */
  partitions?: number;
  /** Default `async`; see `Durability`. */
  durability?: Durability;
  /** JetStream signal stream settings: `replicas` 1 (default) or 3 on a NATS cluster. */
  jetstream?: { replicas?: 1 | 3 };
  /**
   * `nats://[user:pass@]host[:port]`, `tls://…` or `host:port` (owned), several of them comma-separated for
   * the servers of a NATS cluster, or an open connection (left open). Enables live steering and JetStream
   * signals.
   */
  nats?: string | NatsConnection;
  /** Default: `jetstream` when `nats` is given, else `redis-streams`. */
  signals?: SignalsMode;
  /** Letters, digits, `_`, `-`: isolates Redis keys, JetStream names and live subjects. */
  namespace?: string;
  /** Overrides the live subject prefix (`live` / `<namespace>.live`). */
  liveSubjectPrefix?: string;
  liveCodec?: 'json' | 'msgpack';
  liveRequestTimeoutMs?: number;
  /** Upper bound for every Redis call: past it the call fails with `Io` (default 3000). */
  commandTimeoutMs?: number;
  /** Passed to ioredis when `redis` is a URL (password, username, tls, db, ...). */
  redisOptions?: RedisOptions;
  /** Passed to the NATS connect when `nats` is a URL (user, pass, token, tls, ...). */
  natsOptions?: Partial<NodeConnectionOptions>;
  /** How often the signal sweeper runs (default 5000). */
  sweepIntervalMs?: number;
  /** A Queued, available dispatch is signalled again when its last signal is older than this (default 30000). */
  republishAfterMs?: number;
  /**
   * Quiet signals for busy threads (default false: every enqueue is signalled). An enqueue onto a thread
   * that holds a claim publishes no signal: only the claim's holder can run the thread's next dispatch, and
   * a Mailbox's chained completion claims it in the same call. Whenever a claim ends without the same call
   * claiming its thread again (an ack or nack without a chained claim, a dead letter, a supersede,
   * a hand-back, a lease reclaimed by the sweep, a chained claim that found the next dispatch not yet
   * available), the store signals the thread's head: with Redis Streams in the same script, with JetStream
   * through a sweep run within ~10 ms. Requeues are always signalled, and the sweeper still republishes
   * anything left unsignalled after `republishAfterMs`. Saves the busy threads' signal traffic (with
   * JetStream a publish, its storage, a pull, a filter read and an ack per dispatch); every node of the
   * namespace must run a version that knows the option.
   */
  quietClaimedThreads?: boolean;
  logger?: Logger;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 3000;
export const DEFAULT_SWEEP_INTERVAL_MS = 5000;
export const DEFAULT_REPUBLISH_AFTER_MS = 30_000;
const MAX_MS = 86_400_000;

const positiveMs = z
  .number({ error: 'must be a number' })
  .refine((v) => Number.isSafeInteger(v) && v > 0 && v <= MAX_MS, `must be an integer in 1..=${MAX_MS}`);

function isRedisClient(v: unknown): v is Redis {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Redis).evalsha === 'function' &&
    typeof (v as Redis).duplicate === 'function'
  );
}

function isNatsConnection(v: unknown): v is NatsConnection {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as NatsConnection).request === 'function' &&
    typeof (v as NatsConnection).subscribe === 'function'
  );
}

const plainObject = z.custom<Record<string, unknown>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  { error: 'must be an object' },
);

const clusterSeeds = z.strictObject({
  cluster: z
    .array(z.string({ error: 'must be a Redis URL' }).min(1, 'must not be empty'), {
      error: 'must be an array of seed node URLs',
    })
    .min(1, 'must name at least one seed node'),
});

const optionsSchema = z.strictObject({
  redis: z.union(
    [z.string().min(1, 'must not be empty'), z.custom<Redis | Cluster>(isRedisClient), clusterSeeds],
    {
      error: 'must be a Redis URL, { cluster: [seed URLs] }, an ioredis instance or an ioredis Cluster',
    },
  ),
  partitions: z
    .number({ error: 'must be a number' })
    .refine(
      (v) => Number.isSafeInteger(v) && v >= 1 && v <= MAX_PARTITIONS,
      `must be an integer in 1..=${MAX_PARTITIONS}`,
    )
    .optional(),
  durability: z.enum(['async', 'replicated'], { error: "must be 'async' or 'replicated'" }).optional(),
  jetstream: z
    .strictObject({
      replicas: z.union([z.literal(1), z.literal(3)], { error: 'must be 1 or 3' }).optional(),
    })
    .optional(),
  nats: z
    .union([z.string().min(1, 'must not be empty'), z.custom<NatsConnection>(isNatsConnection)], {
      error: 'must be a NATS URL or a NatsConnection',
    })
    .optional(),
  signals: z
    .enum(['jetstream', 'redis-streams', 'none'], { error: "must be 'jetstream', 'redis-streams' or 'none'" })
    .optional(),
  namespace: z
    .string({ error: 'must be a string' })
    .regex(NAMESPACE_PATTERN, 'must be letters, digits, "_" or "-"')
    .max(MAX_NAMESPACE_LENGTH, `must be at most ${MAX_NAMESPACE_LENGTH} characters`)
    .optional(),
  liveSubjectPrefix: z.string({ error: 'must be a string' }).min(1, 'must not be empty').optional(),
  liveCodec: z.enum(['json', 'msgpack'], { error: "must be 'json' or 'msgpack'" }).optional(),
  liveRequestTimeoutMs: positiveMs.optional(),
  commandTimeoutMs: positiveMs.optional(),
  redisOptions: plainObject.optional(),
  natsOptions: plainObject.optional(),
  sweepIntervalMs: positiveMs.optional(),
  republishAfterMs: positiveMs.optional(),
  quietClaimedThreads: z.boolean({ error: 'must be a boolean' }).optional(),
  logger: plainObject.optional(),
});

/** The problem with a Redis URL string, or null when ioredis reads it the way the user meant. */
export function redisUrlProblem(url: string): string | null {
  // ioredis reads a string starting with `/` as a unix socket path (query parameters allowed).
  if (url.startsWith('/') && !url.startsWith('//')) return null;
  // Without a scheme ioredis reads `host:port` as redis://host:port.
  if (/^(\[[0-9a-f:.]+\]|[^/:@\s[\]]+):\d{1,5}$/i.test(url)) return null;
  const shown = `'${redact(url, urlSecrets(url))}'`;
  const forms = 'redis://host:port, rediss://host:port (TLS) or a unix socket path such as /run/redis.sock';
  if (!url.includes('://')) return `${shown} is not a Redis URL: use ${forms}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${shown} is not a Redis URL: use ${forms}`;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    // ioredis would read any other scheme as a unix socket path and fail with "connect ENOENT".
    return `the URL scheme must be redis:// or rediss://, got ${u.protocol}// in ${shown} (or give a unix socket path)`;
  }
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d+$/.test(u.pathname)) {
    return `the path of a Redis URL is the database number (e.g. redis://host:6379/2), got '${u.pathname}' in ${shown}`;
  }
  return null;
}

export function isClusterSeeds(value: unknown): value is RedisClusterSeeds {
  return (
    typeof value === 'object' && value !== null && Array.isArray((value as { cluster?: unknown }).cluster)
  );
}

/** The problem with a Cluster seed URL, or null: `redis://host:port` or `rediss://host:port`, no database. */
export function clusterSeedProblem(url: string): string | null {
  const problem = redisUrlProblem(url);
  if (problem !== null) return problem;
  if (url.startsWith('/')) return 'a Redis Cluster is reached over TCP, not a unix socket';
  if (/^[a-z]+:\/\/[^/]*\/\d+$/i.test(url) && !/\/0$/.test(url)) {
    return 'a Redis Cluster has only database 0';
  }
  return null;
}

/** The problem with a NATS URL string, or null. nats.js takes `nats://`, `tls://` or a bare `host:port`. */
export function natsUrlProblem(url: string): string | null {
  if (url.includes(',')) {
    // The servers of a NATS cluster, comma-separated: each must be a NATS URL.
    for (const part of url.split(',')) {
      const problem = part.trim().length === 0 ? null : natsUrlProblem(part.trim());
      if (problem !== null) return problem;
    }
    return null;
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'nats' || scheme === 'tls') return null;
  const shown = `'${redact(url, urlSecrets(url))}'`;
  return `the URL scheme must be nats:// or tls:// (or none: host:port), got ${scheme}:// in ${shown}`;
}

export interface ResolvedOptions {
  redis: string | Redis | RedisClusterSeeds | Cluster;
  partitions: number;
  durability: Durability;
  jetstreamReplicas: 1 | 3;
  nats: string | NatsConnection | null;
  signals: SignalsMode;
  namespace: string | null;
  liveSubjectPrefix: string | undefined;
  liveCodec: 'json' | 'msgpack';
  liveRequestTimeoutMs: number | undefined;
  commandTimeoutMs: number;
  redisOptions: RedisOptions;
  natsOptions: Partial<NodeConnectionOptions>;
  sweepIntervalMs: number;
  republishAfterMs: number;
  quietClaimedThreads: boolean;
  logger: Logger;
}

export function resolveOptions(input: unknown): ResolvedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw StorageError.validation('options must be an object');
  }
  const parsed = optionsSchema.safeParse(input);
  if (!parsed.success) throw StorageError.validation(describeZodError(parsed.error, 'options'));
  const o = parsed.data;
  const redisProblem = typeof o.redis === 'string' ? redisUrlProblem(o.redis) : null;
  if (redisProblem !== null) throw StorageError.validation(`options.redis: ${redisProblem}`);
  if (isClusterSeeds(o.redis)) {
    o.redis.cluster.forEach((seed, i) => {
      const problem = clusterSeedProblem(seed);
      if (problem !== null) throw StorageError.validation(`options.redis.cluster.${i}: ${problem}`);
    });
  }
  const natsProblem = typeof o.nats === 'string' ? natsUrlProblem(o.nats) : null;
  if (natsProblem !== null) throw StorageError.validation(`options.nats: ${natsProblem}`);
  const nats = o.nats ?? null;
  const signals: SignalsMode = o.signals ?? (nats !== null ? 'jetstream' : 'redis-streams');
  if (signals === 'jetstream' && nats === null) {
    throw StorageError.validation("options.signals: 'jetstream' needs options.nats");
  }
  // ioredis `keyPrefix` rewrites KEYS but not SCAN patterns or keys built inside scripts: use `namespace`.
  const clientPrefix =
    typeof o.redis === 'string' || isClusterSeeds(o.redis)
      ? undefined
      : isCluster(o.redis)
        ? o.redis.options.keyPrefix
        : o.redis.options?.keyPrefix;
  if (o.redisOptions?.keyPrefix !== undefined || (clientPrefix !== undefined && clientPrefix !== '')) {
    throw StorageError.validation('options.redis: ioredis keyPrefix is not supported, use options.namespace');
  }
  return {
    redis: o.redis,
    partitions: o.partitions ?? 1,
    durability: o.durability ?? 'async',
    jetstreamReplicas: o.jetstream?.replicas ?? 1,
    nats,
    signals,
    namespace: o.namespace ?? null,
    liveSubjectPrefix: o.liveSubjectPrefix,
    liveCodec: o.liveCodec ?? 'json',
    liveRequestTimeoutMs: o.liveRequestTimeoutMs,
    commandTimeoutMs: o.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    redisOptions: (o.redisOptions ?? {}) as RedisOptions,
    natsOptions: (o.natsOptions ?? {}) as Partial<NodeConnectionOptions>,
    sweepIntervalMs: o.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS,
    republishAfterMs: o.republishAfterMs ?? DEFAULT_REPUBLISH_AFTER_MS,
    quietClaimedThreads: o.quietClaimedThreads ?? false,
    logger: (o.logger ?? {}) as Logger,
  };
}

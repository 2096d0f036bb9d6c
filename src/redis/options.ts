/**
 * Options of `createMailboxStore`, validated with zod: anything wrong is a `StorageError` kind
 * `Validation` naming the option, before a connection is opened.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import type { Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { StorageError } from '../contract/errors.js';
import { describeZodError } from '../contract/schemas.js';
import type { Logger } from '../util/logger.js';
import { MAX_NAMESPACE_LENGTH, NAMESPACE_PATTERN } from './keys.js';

export type SignalsMode = 'jetstream' | 'redis-streams' | 'none';

export interface CreateMailboxStoreOptions {
  /** A Redis URL (the store owns and closes the connection) or an ioredis instance (left open on close). */
  redis: string | Redis;
  /** A NATS URL (owned) or an open connection (left open). Enables live steering and JetStream signals. */
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

const optionsSchema = z.strictObject({
  redis: z.union([z.string().min(1, 'must not be empty'), z.custom<Redis>(isRedisClient)], {
    error: 'must be a Redis URL or an ioredis instance',
  }),
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
  logger: plainObject.optional(),
});

export interface ResolvedOptions {
  redis: string | Redis;
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
  logger: Logger;
}

export function resolveOptions(input: unknown): ResolvedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw StorageError.validation('options must be an object');
  }
  const parsed = optionsSchema.safeParse(input);
  if (!parsed.success) throw StorageError.validation(describeZodError(parsed.error, 'options'));
  const o = parsed.data;
  const nats = o.nats ?? null;
  const signals: SignalsMode = o.signals ?? (nats !== null ? 'jetstream' : 'redis-streams');
  if (signals === 'jetstream' && nats === null) {
    throw StorageError.validation("options.signals: 'jetstream' needs options.nats");
  }
  // ioredis `keyPrefix` rewrites KEYS but not SCAN patterns or keys built inside scripts: use `namespace`.
  const clientPrefix = typeof o.redis === 'string' ? undefined : o.redis.options?.keyPrefix;
  if (o.redisOptions?.keyPrefix !== undefined || (clientPrefix !== undefined && clientPrefix !== '')) {
    throw StorageError.validation('options.redis: ioredis keyPrefix is not supported, use options.namespace');
  }
  return {
    redis: o.redis,
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
    logger: (o.logger ?? {}) as Logger,
  };
}

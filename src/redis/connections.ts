/**
 * Connections the Redis store opens itself: fail fast instead of queueing while disconnected (so every call
 * answers within `commandTimeoutMs`), keep reconnecting in the background, log one warning per outage and one
 * line when the connection is back, and never let a secret reach a message.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { ownedClusterOptions } from './cluster.js';
import { closeSocketsOnFailure } from '../util/close-sockets-on-failure.js';
import type { Logger } from '../util/logger.js';
import { OutageLog } from '../util/outage-log.js';
import {
  noteConnected,
  noteConnectionError,
  redact,
  redisEndpoint,
  toIoError,
  unreachableError,
  urlSecrets,
} from './errors.js';
import { isClusterSeeds, type RedisClusterSeeds, type ResolvedOptions } from './options.js';

/** Connection failures (as opposed to a server that answered with an error, e.g. WRONGPASS). */
const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNRESET|ENOENT|ETIMEDOUT/;

export function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export function collectSecrets(o: ResolvedOptions): string[] {
  const secrets: string[] = [];
  if (typeof o.redis === 'string') secrets.push(...urlSecrets(o.redis));
  if (isClusterSeeds(o.redis)) for (const seed of o.redis.cluster) secrets.push(...urlSecrets(seed));
  if (typeof o.nats === 'string')
    for (const url of o.nats.split(',')) secrets.push(...urlSecrets(url.trim()));
  for (const value of [o.redisOptions.password, o.natsOptions.pass, o.natsOptions.token]) {
    if (typeof value === 'string' && value.length > 0) secrets.push(value);
  }
  return secrets;
}

/**
 * Remember each connection error (calls failing while disconnected name it) and log the outage: one warning
 * when the connection is lost, one info line when it is ready again. ioredis retries in a loop and emits an
 * error per attempt, so logging each one would flood the log.
 */
function watchConnection(redis: Redis, logger: Logger, secrets: readonly string[], name: string): void {
  const outage = new OutageLog(logger, 'redis connection', {
    fields: { connection: name, server: redact(redisEndpoint(redis), secrets) },
  });
  redis.on('error', (err: unknown) => {
    noteConnectionError(redis, err);
    outage.failed(new Error(redact(err instanceof Error ? err.message : String(err), secrets)));
  });
  redis.on('ready', () => {
    noteConnected(redis);
    outage.succeeded();
  });
}

/**
 * Options for connections the store owns: fail fast instead of queueing while disconnected (so every call
 * gets an answer within `commandTimeoutMs`), keep reconnecting in the background.
 */
function ownedRedisOptions(o: ResolvedOptions): RedisOptions {
  return {
    lazyConnect: true,
    // Commands issued in the same event-loop turn share one socket write (and one read on the server):
    // per-command writes were the largest single CPU cost of a busy node and of Redis itself.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.commandTimeoutMs,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...o.redisOptions,
  };
}

export async function closeRedis(redis: Redis, timeoutMs: number): Promise<void> {
  try {
    await deadline(redis.quit(), timeoutMs, 'redis quit');
  } catch {
    // Unreachable or stalled server: drop the socket instead of waiting.
  } finally {
    redis.disconnect();
  }
}

/** Connect, or fail with the most telling error seen (e.g. WRONGPASS rather than "Connection is closed"). */
async function connectOrFail(
  redis: Redis,
  o: ResolvedOptions,
  secrets: readonly string[],
  what: string,
): Promise<void> {
  let cause: unknown = null;
  const remember = (err: unknown): void => {
    cause ??= err;
  };
  redis.on('error', remember);
  try {
    await deadline(redis.connect(), o.commandTimeoutMs, what);
  } catch (err) {
    redis.disconnect();
    throw connectError(redis, cause ?? err, o.commandTimeoutMs, secrets);
  } finally {
    redis.off('error', remember);
  }
}

/** Why a connect failed, in words that point at the fix. */
function connectError(redis: Redis, err: unknown, timeoutMs: number, secrets: readonly string[]) {
  const message = err instanceof Error ? err.message : String(err);
  const endpoint = redisEndpoint(redis);
  if (UNREACHABLE.test(message)) return unreachableError(endpoint, message, secrets);
  if (message.includes('no answer within')) {
    return unreachableError(
      endpoint,
      `no answer within ${timeoutMs} ms (is a Redis server listening there?)`,
      secrets,
    );
  }
  return toIoError(`Redis at ${endpoint}`, err, secrets);
}

export async function openOwnedRedis(
  url: string,
  o: ResolvedOptions,
  secrets: readonly string[],
  name: string,
): Promise<Redis> {
  const redis = new Redis(url, ownedRedisOptions(o));
  watchConnection(redis, o.logger, secrets, name);
  await connectOrFail(redis, o, secrets, 'redis connect');
  return redis;
}

/** host/port of a seed URL, and the credentials and TLS it asks for (applied to every node). */
function seedNode(url: string): {
  node: { host: string; port: number };
  auth: { username?: string; password?: string; tls?: Record<string, never> };
} {
  const u = new URL(url.includes('://') ? url : `redis://${url}`);
  const auth: { username?: string; password?: string; tls?: Record<string, never> } = {};
  if (u.password) {
    auth.password = decodeURIComponent(u.password);
    if (u.username) auth.username = decodeURIComponent(u.username);
  } else if (u.username) {
    auth.password = decodeURIComponent(u.username);
  }
  if (u.protocol === 'rediss:') auth.tls = {};
  return { node: { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 }, auth };
}

/**
 * A Redis Cluster client the store owns: connected (slot map known) within `commandTimeoutMs`, or an `Io`
 * naming the seeds. Failovers are ridden out (see `ownedClusterOptions`); one warning per outage is logged.
 */
export async function openOwnedCluster(
  seeds: RedisClusterSeeds,
  o: ResolvedOptions,
  secrets: readonly string[],
): Promise<Cluster> {
  const parsed = seeds.cluster.map(seedNode);
  const { redisOptions } = o;
  const cluster = new Cluster(
    parsed.map((p) => p.node),
    ownedClusterOptions(o.commandTimeoutMs, {
      ...parsed[0]?.auth,
      ...(redisOptions as Record<string, unknown>),
    }),
  );
  const where = redact(seeds.cluster.join(', '), secrets);
  const outage = new OutageLog(o.logger, 'redis cluster connection', { fields: { seeds: where } });
  let cause: unknown = null;
  cluster.on('error', (err: unknown) => {
    cause ??= err;
    outage.failed(new Error(redact(err instanceof Error ? err.message : String(err), secrets)));
  });
  cluster.on('ready', () => outage.succeeded());
  try {
    await deadline(cluster.connect(), o.commandTimeoutMs, 'redis cluster connect');
  } catch (err) {
    cluster.disconnect();
    const why = cause ?? err;
    throw toIoError(
      `Redis Cluster at ${where} is unreachable`,
      why instanceof Error ? why : new Error(String(why)),
      secrets,
    );
  }
  return cluster;
}

/** `QUIT` every node of an owned Cluster within the timeout, then drop whatever is left. */
export async function closeCluster(cluster: Cluster, timeoutMs: number): Promise<void> {
  try {
    await deadline(cluster.quit(), timeoutMs, 'redis cluster quit');
  } catch {
    // Unreachable nodes: drop the sockets instead of waiting.
  } finally {
    cluster.disconnect();
  }
}

export async function openNats(
  url: string,
  o: ResolvedOptions,
  secrets: readonly string[],
): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  // `nats://a:4222,nats://b:4222`: the servers of a NATS cluster (credentials from the first one).
  const parts = url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  const { auth } = natsUrlCredentials(parts[0] ?? url);
  const servers = parts.map((u) => natsUrlCredentials(u).servers);
  try {
    // A failed connect can leave nats.js's socket open (see closeSocketsOnFailure): close it, or the process
    // never exits.
    return await closeSocketsOnFailure(() =>
      deadline(
        // Keep reconnecting for as long as the store lives (nats.js gives up after 10 attempts by default).
        connect({
          servers,
          timeout: o.commandTimeoutMs,
          maxReconnectAttempts: -1,
          ...auth,
          ...o.natsOptions,
        }),
        o.commandTimeoutMs + 1000,
        'nats connect',
      ),
    );
  } catch (err) {
    throw natsConnectError(url, err, o.commandTimeoutMs, secrets);
  }
}

function natsConnectError(url: string, err: unknown, timeoutMs: number, secrets: readonly string[]) {
  const message = err instanceof Error ? err.message : String(err);
  const where = `NATS at ${redact(url, secrets)}`;
  if (/connection refused|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/i.test(message)) {
    return toIoError(`${where} is unreachable`, err, secrets);
  }
  if (/timeout|no answer within/i.test(message)) {
    return toIoError(
      where,
      new Error(`no NATS handshake within ${timeoutMs} ms (is a nats-server listening there?)`),
      secrets,
    );
  }
  return toIoError(where, err, secrets);
}

/**
 * nats.js ignores credentials in the URL, so `nats://user:pass@host` and `nats://token@host` are split into
 * connect options here (explicit `natsOptions` still win).
 */
export function natsUrlCredentials(url: string): {
  servers: string;
  auth: { user?: string; pass?: string; token?: string };
} {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { servers: url, auth: {} };
  }
  if (!u.username && !u.password) return { servers: url, auth: {} };
  const user = decodeURIComponent(u.username);
  const auth = u.password ? { user, pass: decodeURIComponent(u.password) } : { token: user };
  u.username = '';
  u.password = '';
  return { servers: u.toString(), auth };
}

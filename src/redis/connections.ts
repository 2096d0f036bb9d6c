/**
 * Connections the Redis store opens itself: fail fast instead of queueing while disconnected (so every call
 * answers within `commandTimeoutMs`), keep reconnecting in the background, log connection errors at most
 * once per interval, and never let a secret reach a message.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { Logger } from '../util/logger.js';
import { redact, toIoError, urlSecrets } from './errors.js';
import type { ResolvedOptions } from './options.js';

/** At most one connection-error log line per connection in this window (outages reconnect in a loop). */
const ERROR_LOG_INTERVAL_MS = 10_000;

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
  if (typeof o.nats === 'string') secrets.push(...urlSecrets(o.nats));
  for (const value of [o.redisOptions.password, o.natsOptions.pass, o.natsOptions.token]) {
    if (typeof value === 'string' && value.length > 0) secrets.push(value);
  }
  return secrets;
}

function logConnectionErrors(redis: Redis, logger: Logger, secrets: readonly string[], name: string): void {
  let lastLoggedAt = 0;
  let suppressed = 0;
  redis.on('error', (err: unknown) => {
    const now = Date.now();
    if (now - lastLoggedAt < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastLoggedAt = now;
    logger.warn?.('redis connection error (reconnecting in the background)', {
      connection: name,
      error: redact(err instanceof Error ? err.message : String(err), secrets),
      suppressed,
    });
    suppressed = 0;
  });
}

/**
 * Options for connections the store owns: fail fast instead of queueing while disconnected (so every call
 * gets an answer within `commandTimeoutMs`), keep reconnecting in the background.
 */
function ownedRedisOptions(o: ResolvedOptions): RedisOptions {
  return {
    lazyConnect: true,
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
    throw toIoError('redis', cause ?? err, secrets);
  } finally {
    redis.off('error', remember);
  }
}

export async function openOwnedRedis(
  url: string,
  o: ResolvedOptions,
  secrets: readonly string[],
  name: string,
): Promise<Redis> {
  const redis = new Redis(url, ownedRedisOptions(o));
  logConnectionErrors(redis, o.logger, secrets, name);
  await connectOrFail(redis, o, secrets, 'redis connect');
  return redis;
}

export async function openNats(
  url: string,
  o: ResolvedOptions,
  secrets: readonly string[],
): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  const { servers, auth } = natsUrlCredentials(url);
  try {
    return await deadline(
      // Keep reconnecting for as long as the store lives (nats.js gives up after 10 attempts by default).
      connect({ servers, timeout: o.commandTimeoutMs, maxReconnectAttempts: -1, ...auth, ...o.natsOptions }),
      o.commandTimeoutMs + 1000,
      'nats connect',
    );
  } catch (err) {
    throw toIoError('nats', err, secrets);
  }
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

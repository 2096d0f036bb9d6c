/**
 * Backend failures become `StorageError` kind `Io` with a message that names the problem, minus secrets:
 * passwords and tokens configured for the connections and any `user:pass@` userinfo in URLs are replaced by
 * `***`. A Redis that cannot be reached reads "Redis at <host:port> is unreachable: <why>", not the client
 * library's internal wording.
 */
import type { Redis } from 'ioredis';
import { StorageError } from '../contract/errors.js';

const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi;

/**
 * What ioredis answers for a command sent while its connection is down: with the offline queue disabled (so
 * calls fail fast instead of queueing) it says "Stream isn't writeable and enableOfflineQueue options is
 * false", and "Connection is closed." after a disconnect.
 */
const NOT_CONNECTED = /Stream isn't writeable|enableOfflineQueue|Connection is closed/;

export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(URL_USERINFO, '$1***@');
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('***');
  }
  return out;
}

/** Passwords / tokens found in a connection URL (its userinfo), for redaction. */
export function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    // `scheme://token@host` carries the secret in the username position.
    const raw = u.password.length > 0 ? [u.password] : [u.username];
    return [...raw, ...raw.map((s) => decodeURIComponent(s))].filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function toIoError(backend: string, err: unknown, secrets: readonly string[]): StorageError {
  if (err instanceof StorageError) return err;
  return StorageError.io(`${backend}: ${redact(messageOf(err), secrets)}`);
}

/** The last connection error of each Redis connection the store opened itself (see `connections.ts`). */
const lastConnectionError = new WeakMap<Redis, string>();

export function noteConnectionError(redis: Redis, err: unknown): void {
  lastConnectionError.set(redis, messageOf(err));
}

export function noteConnected(redis: Redis): void {
  lastConnectionError.delete(redis);
}

/** `host:port` (or the unix socket path) a Redis client talks to. */
export function redisEndpoint(redis: Redis): string {
  const o = redis.options;
  if (typeof o.path === 'string' && o.path.length > 0) return o.path;
  return `${o.host ?? 'localhost'}:${o.port ?? 6379}`;
}

/** `Redis at <endpoint> is unreachable: <why>`. */
export function unreachableError(endpoint: string, why: string, secrets: readonly string[]): StorageError {
  return StorageError.io(redact(`Redis at ${endpoint} is unreachable: ${why}`, secrets));
}

/**
 * `toIoError` for a call on `redis`: a call that failed because the connection is down says which server is
 * unreachable and why (the last connection error, e.g. `connect ECONNREFUSED 127.0.0.1:6379`); anything
 * else keeps its own message. Also rewrites an `Io` error built earlier from such a failure.
 */
export function redisIoError(redis: Redis, err: unknown, secrets: readonly string[]): StorageError {
  const text = err instanceof StorageError ? err.detail : messageOf(err);
  if (err instanceof StorageError && err.kind !== 'Io') return err;
  if (!NOT_CONNECTED.test(text)) return toIoError('redis', err, secrets);
  const cause = lastConnectionError.get(redis);
  const why =
    cause !== undefined
      ? `${cause} (reconnecting in the background)`
      : `not connected (connection ${redis.status})`;
  return unreachableError(redisEndpoint(redis), why, secrets);
}

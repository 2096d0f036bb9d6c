/**
 * `awaken-mailbox doctor`: can this machine reach the servers awaken-mailbox needs, are they new enough, and is
 * JetStream on? Each check reports ok / problem with a sentence a user can act on.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { redact, urlSecrets } from '../redis/errors.js';
import { natsUrlProblem, redisUrlProblem } from '../redis/options.js';
import { closeSocketsOnFailure } from '../util/close-sockets-on-failure.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export const MIN_REDIS_VERSION = '7.0.0';
export const MIN_NATS_VERSION = '2.9.0';

/** Compare dotted versions numerically (`7.0.15` ≥ `7.0.0`); non-numeric parts count as 0. */
export function versionAtLeast(actual: string, minimum: string): boolean {
  const a = actual.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const b = minimum.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export async function checkRedis(url: string, timeoutMs = 3000): Promise<DoctorCheck[]> {
  const problem = redisUrlProblem(url);
  if (problem !== null) return [{ name: 'redis', ok: false, detail: `--redis: ${problem}` }];
  const shown = redact(url, urlSecrets(url));
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The first connection error says why (e.g. ETIMEDOUT); the rejected connect() only says "Connection is closed".
  let cause: unknown = null;
  redis.on('error', (err: unknown) => {
    cause ??= err;
  });
  try {
    await redis.connect();
    await redis.ping();
    const info = await redis.info('server');
    const version = /redis_version:([^\r\n]+)/.exec(info)?.[1]?.trim() ?? 'unknown';
    const valkey = /valkey_version:([^\r\n]+)/.exec(info)?.[1]?.trim();
    const checks: DoctorCheck[] = [{ name: 'redis', ok: true, detail: `reachable at ${shown}` }];
    const versionOk = version !== 'unknown' && versionAtLeast(version, MIN_REDIS_VERSION);
    checks.push({
      name: 'redis version',
      ok: versionOk,
      detail: versionOk
        ? `${valkey ? `valkey ${valkey} (redis ${version})` : `redis ${version}`} (need ≥ ${MIN_REDIS_VERSION})`
        : `redis ${version} is too old: awaken-mailbox needs Redis ≥ ${MIN_REDIS_VERSION} (or Valkey)`,
    });
    const lua = await redis.eval('return 1', 0);
    checks.push({
      name: 'redis lua',
      ok: lua === 1,
      detail: lua === 1 ? 'EVAL works' : `EVAL returned ${String(lua)}`,
    });
    // The store loads its Lua code as a Functions library (FUNCTION LOAD once, FCALL per call); a server
    // without Functions gets the same code as EVAL scripts, which re-run the shared prelude on every call.
    const functions = await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'awaken_mailbox_*').then(
      (libraries) => ({ ok: true as const, libraries: Array.isArray(libraries) ? libraries.length : 0 }),
      (err: unknown) => ({ ok: false as const, error: describe(err) }),
    );
    checks.push({
      name: 'redis functions',
      ok: true,
      detail: functions.ok
        ? `FUNCTION available (${functions.libraries} awaken_mailbox library version(s) loaded)`
        : `not available (${functions.error}): the store falls back to EVAL scripts, a little slower`,
    });
    return checks;
  } catch (err) {
    return [
      {
        name: 'redis',
        ok: false,
        detail: `cannot use Redis at ${shown}: ${redact(describe(cause ?? err), urlSecrets(url))} — start one (e.g. docker compose up -d) or pass --redis <url>`,
      },
    ];
  } finally {
    redis.disconnect();
  }
}

export async function checkNats(url: string, timeoutMs = 3000): Promise<DoctorCheck[]> {
  const problem = natsUrlProblem(url);
  if (problem !== null) return [{ name: 'nats', ok: false, detail: `--nats: ${problem}` }];
  const shown = redact(url, urlSecrets(url));
  let nc: Awaited<ReturnType<typeof connect>> | null = null;
  try {
    // A failed connect can leave nats.js's socket open; close it so the check never keeps the process alive.
    nc = await closeSocketsOnFailure(() =>
      connect({ servers: url, timeout: timeoutMs, reconnect: false, name: 'awaken-mailbox-doctor' }),
    );
    const version = nc.info?.version ?? 'unknown';
    const checks: DoctorCheck[] = [{ name: 'nats', ok: true, detail: `reachable at ${shown}` }];
    const versionOk = version !== 'unknown' && versionAtLeast(version, MIN_NATS_VERSION);
    checks.push({
      name: 'nats version',
      ok: versionOk,
      detail: versionOk
        ? `nats-server ${version} (need ≥ ${MIN_NATS_VERSION})`
        : `nats-server ${version} is too old: awaken-mailbox needs ≥ ${MIN_NATS_VERSION}`,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
      const account = await jsm.getAccountInfo();
      checks.push({
        name: 'nats jetstream',
        ok: true,
        detail: `enabled (${account.streams} stream(s), ${account.consumers} consumer(s) in this account)`,
      });
    } catch (err) {
      checks.push({
        name: 'nats jetstream',
        ok: false,
        detail: `JetStream is not available at ${shown}: ${describe(err)} — start nats-server with -js (or use --signals redis-streams)`,
      });
    }
    return checks;
  } catch (err) {
    return [
      {
        name: 'nats',
        ok: false,
        detail: `cannot connect to NATS at ${shown}: ${describe(err)} — start nats-server -js or pass --nats <url>`,
      },
    ];
  } finally {
    await nc?.close().catch(() => undefined);
  }
}

export async function runDoctor(opts: {
  redis: string;
  nats: string | null;
  timeoutMs?: number;
}): Promise<DoctorReport> {
  const [redis, nats] = await Promise.all([
    checkRedis(opts.redis, opts.timeoutMs),
    opts.nats === null ? Promise.resolve<DoctorCheck[]>([]) : checkNats(opts.nats, opts.timeoutMs),
  ]);
  const checks = [...redis, ...nats];
  return { ok: checks.every((c) => c.ok), checks };
}

export function formatDoctor(report: DoctorReport): string {
  const lines = report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(15)} ${c.detail}`);
  lines.push(report.ok ? 'all checks passed' : 'some checks failed');
  return lines.join('\n');
}

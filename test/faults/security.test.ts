/**
 * Fault 7 — authenticated servers and secret hygiene.
 *
 * A redis-server with `requirepass` and an ACL user, a nats-server with user/password and one with a token:
 * each works through `createMailboxStore` options (and credentials in the URL). Wrong credentials give
 * `StorageError` kind `Io` whose `message`, `detail` and stack never contain a secret, and nothing logged
 * through the `logger` option ever contains one either.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { LiveRunTarget } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions, RedisMailboxStore } from '../../src/redis/index.js';
import type { Logger } from '../../src/util/logger.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, attempt, describeError, disposeStores, eventually } from './support.js';

const secret = (label: string): string => `${label}-${randomBytes(8).toString('hex')}`;
const REDIS_PASS = secret('redisPw');
const ACL_USER = 'awaken_app';
const ACL_PASS = secret('aclPw');
const NATS_USER = 'awaken_nats';
const NATS_PASS = secret('natsPw');
const NATS_TOKEN = secret('natsTok');
const WRONG = secret('wrongPw');
const SECRETS = [REDIS_PASS, ACL_PASS, NATS_PASS, NATS_TOKEN, WRONG];

const servers = new Servers();
let redis: SpawnedServer;
let natsUser: SpawnedServer;
let natsToken: SpawnedServer;
const open: RedisMailboxStore[] = [];
/** Everything any store logged in this file. */
const logged: string[] = [];

const logger: Logger = {
  debug: (msg, fields) => void logged.push(inspect(['debug', msg, fields], { depth: 12 })),
  info: (msg, fields) => void logged.push(inspect(['info', msg, fields], { depth: 12 })),
  warn: (msg, fields) => void logged.push(inspect(['warn', msg, fields], { depth: 12 })),
  error: (msg, fields) => void logged.push(inspect(['error', msg, fields], { depth: 12 })),
};

function expectNoSecret(text: string, where: string): void {
  for (const s of SECRETS) expect(text.includes(s), `${where} contains a secret: ${text}`).toBe(false);
}

async function store(
  options: Omit<CreateMailboxStoreOptions, 'namespace' | 'logger'>,
  label: string,
): Promise<RedisMailboxStore> {
  const s = await createMailboxStore({
    ...options,
    namespace: testNamespace(label),
    logger,
    commandTimeoutMs: 2000,
  });
  open.push(s);
  return s;
}

/** createMailboxStore or its first call must fail with Io, in bounded time, without leaking a secret. */
async function expectIoWithoutSecrets(
  options: Omit<CreateMailboxStoreOptions, 'namespace' | 'logger'>,
  what: string,
): Promise<void> {
  const created = await attempt(() => store(options, 'sec-bad'), 20_000, `createMailboxStore (${what})`);
  let error: unknown;
  if (created.ok) {
    const used = await attempt(() => created.value.loadDispatch('x'), 20_000, `first call (${what})`);
    if (used.ok) throw new Error(`${what}: the store works with wrong credentials`);
    error = used.error;
  } else {
    error = created.error;
  }
  expect(error, `${what}: ${describeError(error)}`).toBeInstanceOf(StorageError);
  const e = error as StorageError;
  expect(e.kind, `${what}: ${e.message}`).toBe('Io');
  expectNoSecret(e.message, `${what}: message`);
  expectNoSecret(e.detail, `${what}: detail`);
  expectNoSecret(String(e.stack), `${what}: stack`);
  expectNoSecret(inspect(e, { depth: 8 }), `${what}: inspected error`);
}

async function roundTrip(s: RedisMailboxStore, label: string): Promise<void> {
  const id = `${label}-d`;
  await s.enqueue(
    queuedDispatch({ dispatch_id: id, thread_id: `${label}-t`, run_id: 'r', created_at: Date.now() }),
  );
  expect((await s.loadDispatch(id))?.status).toBe('Queued');
  // The signal path uses its own connection (Redis Streams) or NATS: it must be authenticated too.
  const signals = await eventually(
    async () => {
      const got = await s.pullDispatchSignals(10, 200);
      for (const e of got) await e.receipt.ack();
      return got.some((e) => e.dispatch_id === id) ? got : null;
    },
    15_000,
    `the signal of ${id}`,
    50,
  );
  expect(signals.length).toBeGreaterThan(0);
}

async function liveRoundTrip(s: RedisMailboxStore): Promise<void> {
  const target: LiveRunTarget = { thread_id: 'sec-live', run_id: 'r1', dispatch_id: 'd1' };
  const stream = await s.openLiveChannelFor(target);
  const consumed = (async () => {
    for await (const entry of stream) {
      await entry.receipt.ack();
      return entry.command;
    }
    return null;
  })();
  expect(await s.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
  expect(await consumed).toBe('Cancel');
  await stream.close();
}

beforeAll(async () => {
  [redis, natsUser, natsToken] = await Promise.all([
    spawnRedis({ requirePass: REDIS_PASS }).then((s) => servers.add(s)),
    spawnNats({ user: NATS_USER, pass: NATS_PASS }).then((s) => servers.add(s)),
    spawnNats({ token: NATS_TOKEN }).then((s) => servers.add(s)),
  ]);
  const admin = new Redis(redis.url, { password: REDIS_PASS, lazyConnect: true });
  try {
    await admin.connect();
    await admin.call('ACL', 'SETUSER', ACL_USER, 'on', `>${ACL_PASS}`, '~*', '&*', '+@all');
  } finally {
    admin.disconnect();
  }
});

afterEach(async () => {
  await disposeStores(open.splice(0));
});

afterAll(async () => {
  await disposeStores(open.splice(0));
  await servers.stopAll();
});

const hostPort = (s: SpawnedServer): string => `127.0.0.1:${s.port}`;

describe('redis with requirepass and an ACL user', () => {
  it('works with the password in redisOptions (main and signal connections)', async () => {
    await roundTrip(
      await store({ redis: redis.url, redisOptions: { password: REDIS_PASS } }, 'sec-pw'),
      'pw',
    );
  });

  it('works with the password in the URL', async () => {
    await roundTrip(await store({ redis: `redis://:${REDIS_PASS}@${hostPort(redis)}` }, 'sec-url'), 'url');
  });

  it('works as an ACL user (username + password)', async () => {
    const s = await store(
      { redis: redis.url, redisOptions: { username: ACL_USER, password: ACL_PASS } },
      'sec-acl',
    );
    await roundTrip(s, 'acl');
  });

  it(
    'fails with Io and no secret for a wrong, missing or misplaced password',
    { timeout: 60_000 },
    async () => {
      await expectIoWithoutSecrets({ redis: redis.url, redisOptions: { password: WRONG } }, 'wrong password');
      await expectIoWithoutSecrets(
        { redis: `redis://:${WRONG}@${hostPort(redis)}` },
        'wrong password in URL',
      );
      await expectIoWithoutSecrets(
        { redis: redis.url, redisOptions: { username: ACL_USER, password: WRONG } },
        'wrong ACL password',
      );
      await expectIoWithoutSecrets(
        { redis: redis.url, redisOptions: { username: ACL_USER, password: REDIS_PASS } },
        'ACL user with the default password',
      );
      await expectIoWithoutSecrets({ redis: redis.url }, 'no password');
    },
  );
});

describe('nats with user/password and with a token', () => {
  const redisOk = (): Pick<CreateMailboxStoreOptions, 'redis' | 'redisOptions'> => ({
    redis: redis.url,
    redisOptions: { password: REDIS_PASS },
  });

  it('works with user/password in natsOptions (signals and live)', async () => {
    const s = await store(
      { ...redisOk(), nats: natsUser.url, natsOptions: { user: NATS_USER, pass: NATS_PASS } },
      'sec-nu',
    );
    await roundTrip(s, 'nats-user');
    await liveRoundTrip(s);
  });

  it('works with user/password in the URL', async () => {
    const s = await store(
      { ...redisOk(), nats: `nats://${NATS_USER}:${NATS_PASS}@${hostPort(natsUser)}` },
      'sec-nuurl',
    );
    await roundTrip(s, 'nats-user-url');
  });

  it('works with a token in natsOptions (signals and live)', async () => {
    const s = await store(
      { ...redisOk(), nats: natsToken.url, natsOptions: { token: NATS_TOKEN } },
      'sec-nt',
    );
    await roundTrip(s, 'nats-token');
    await liveRoundTrip(s);
  });

  it('works with a token in the URL', async () => {
    const s = await store({ ...redisOk(), nats: `nats://${NATS_TOKEN}@${hostPort(natsToken)}` }, 'sec-nturl');
    await roundTrip(s, 'nats-token-url');
  });

  it('fails with Io and no secret for wrong credentials', { timeout: 60_000 }, async () => {
    await expectIoWithoutSecrets(
      { ...redisOk(), nats: natsUser.url, natsOptions: { user: NATS_USER, pass: WRONG } },
      'wrong NATS password',
    );
    await expectIoWithoutSecrets(
      { ...redisOk(), nats: `nats://${NATS_USER}:${WRONG}@${hostPort(natsUser)}` },
      'wrong NATS password in URL',
    );
    await expectIoWithoutSecrets(
      { ...redisOk(), nats: natsToken.url, natsOptions: { token: WRONG } },
      'wrong NATS token',
    );
    await expectIoWithoutSecrets(
      { ...redisOk(), nats: `nats://${WRONG}@${hostPort(natsToken)}` },
      'wrong NATS token in URL',
    );
    await expectIoWithoutSecrets({ ...redisOk(), nats: natsToken.url }, 'no NATS token');
  });
});

describe('outages with authenticated connections', () => {
  it(
    'reconnect with the same credentials (and log nothing secret meanwhile)',
    { timeout: 60_000 },
    async () => {
      const s = await store(
        {
          redis: `redis://:${REDIS_PASS}@${hostPort(redis)}`,
          nats: natsUser.url,
          natsOptions: { user: NATS_USER, pass: NATS_PASS },
          // Signals published while NATS is reconnecting are dropped (see nats-blip.test.ts): let the sweeper
          // resend them quickly, this test is about credentials.
          sweepIntervalMs: 300,
          republishAfterMs: 1000,
        },
        'sec-outage',
      );
      await roundTrip(s, 'before-outage');
      const logsBefore = logged.length;
      redis.signal('SIGKILL');
      natsUser.signal('SIGKILL');
      // Calls during the outage fail with Io, without secrets.
      const during = await attempt(() => s.loadDispatch('before-outage-d'), 20_000, 'load during the outage');
      expect(during.ok).toBe(false);
      expect((during as { error: unknown }).error).toBeInstanceOf(StorageError);
      expectNoSecret(describeError((during as { error: unknown }).error), 'error during the outage');
      await Promise.all([redis.restart(), natsUser.restart()]);
      await eventually(
        async () => (await s.loadDispatch('before-outage-d')) === null,
        20_000,
        'redis to come back',
      );
      await roundTrip(s, 'after-outage');
      // The outage was logged (so the hygiene check below has something to check).
      expect(logged.length).toBeGreaterThan(logsBefore);
    },
  );
});

describe('logs', () => {
  it('never contain a secret', () => {
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expectNoSecret(line, 'log line');
  });
});

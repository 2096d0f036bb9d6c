/**
 * Errors and logs that name the problem (issue 12 item 10), each reproduced as a user would meet it:
 * - a Redis URL with the wrong scheme or no URL at all is `Validation` saying which forms work (before: `Io`
 *   "connect ENOENT //127.0.0.1:6379" and "Invalid URL");
 * - a Redis that is down is `Io` "Redis at <host:port> is unreachable: <why>" (before: ioredis' "Stream isn't
 *   writeable and enableOfflineQueue options is false"), at create and on every call afterwards;
 * - a failing signal pull logs one warning per outage and one info line on recovery (before: one warning per
 *   250 ms retry);
 * - a bad message names the bad field, not the whole LiveRunCommand union;
 * - a Mailbox config typo is a `ConfigError` naming the key (with the key it probably meant), not a StorageError.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { MailboxStore } from '../../src/contract/store.js';
import { ConfigError } from '../../src/index.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { OutageLog } from '../../src/util/outage-log.js';
import type { Logger } from '../../src/util/logger.js';
import { freePort, redisUrl, spawnRedis, testNamespace } from '../support/servers.js';
import { Servers, disposeStores, eventually } from './support.js';

const servers = new Servers();
const stores: RedisMailboxStore[] = [];

afterAll(async () => {
  await disposeStores(stores, false);
  await servers.stopAll();
});

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'expected a StorageError').toBeInstanceOf(StorageError);
  return err as StorageError;
}

interface Line {
  level: 'info' | 'warn';
  msg: string;
  fields: Record<string, unknown>;
}

function recordingLogger(lines: Line[]): Logger {
  return {
    info: (msg, fields) => lines.push({ level: 'info', msg, fields: fields ?? {} }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields: fields ?? {} }),
  };
}

describe('Redis and NATS URLs', () => {
  it.each([
    [
      'http://127.0.0.1:6379',
      /options\.redis: the URL scheme must be redis:\/\/ or rediss:\/\/, got http:\/\//,
    ],
    ['not a url', /options\.redis: 'not a url' is not a Redis URL: use redis:\/\/host:port/],
    ['redis://127.0.0.1:6379/zero', /the path of a Redis URL is the database number/],
  ])('redis %j → Validation saying what a Redis URL looks like', async (redis, message) => {
    const err = await failure(createMailboxStore({ redis, signals: 'none' }));
    expect(err.kind).toBe('Validation');
    expect(err.detail).toMatch(message);
  });

  it('the password of a rejected URL is not echoed', async () => {
    const err = await failure(createMailboxStore({ redis: 'http://user:hunter2@127.0.0.1:6379' }));
    expect(err.kind).toBe('Validation');
    expect(err.message).not.toContain('hunter2');
  });

  it('nats with a scheme other than nats:// or tls:// → Validation', async () => {
    const err = await failure(createMailboxStore({ redis: await redisUrl(), nats: 'http://127.0.0.1:4222' }));
    expect(err.kind).toBe('Validation');
    expect(err.detail).toMatch(/options\.nats: the URL scheme must be nats:\/\/ or tls:\/\//);
  });

  it('host:port without a scheme still works (ioredis reads it as redis://)', async () => {
    const { hostname, port } = new URL(await redisUrl());
    const store = await createMailboxStore({
      redis: `${hostname}:${port}`,
      signals: 'none',
      namespace: testNamespace('clear-errors'),
    });
    stores.push(store);
    expect(await store.countDispatchesByStatus('Queued')).toBe(0);
  });
});

describe('a Redis that is down', () => {
  it('at create: Io "Redis at <host:port> is unreachable: <why>"', async () => {
    const port = await freePort();
    const err = await failure(
      createMailboxStore({ redis: `redis://127.0.0.1:${port}`, signals: 'none', commandTimeoutMs: 1000 }),
    );
    expect(err.kind).toBe('Io');
    expect(err.detail).toBe(
      `Redis at 127.0.0.1:${port} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
  });

  it('after create: every call says which Redis is unreachable and why, never the client wording', async () => {
    const server = servers.add(await spawnRedis());
    const store = await createMailboxStore({
      redis: server.url,
      namespace: testNamespace('clear-errors'),
      commandTimeoutMs: 1000,
    });
    stores.push(store);
    server.signal('SIGKILL');
    const calls: [string, () => Promise<unknown>][] = [
      ['loadDispatch', () => store.loadDispatch('d')],
      ['countDispatchesByStatus', () => store.countDispatchesByStatus('Queued')],
      ['loadDispatches', () => store.loadDispatches(['a', 'b'])],
      ['pullDispatchSignals', () => store.pullDispatchSignals(5, 50)],
    ];
    // Wait until the client has seen the server go away (its connection closes, then a reconnect fails).
    const unreachable = new RegExp(
      `Redis at 127\\.0\\.0\\.1:${server.port} is unreachable: connect ECONNREFUSED`,
    );
    await eventually(
      async () => unreachable.test((await failure(store.loadDispatch('d'))).detail),
      10_000,
      'the store to notice the server is gone',
    );
    for (const [name, call] of calls) {
      const err = await failure(call());
      expect(err.kind, name).toBe('Io');
      expect(err.detail, name).toMatch(unreachable);
      expect(err.detail, name).not.toMatch(/Stream isn't writeable|enableOfflineQueue/);
    }
  });
});

describe('an outage is logged once, and its end once', () => {
  it('a signal pull failing for a while: one warning, then one info line when it works again', async () => {
    const memory = new MemoryMailboxStore();
    let down = true;
    let failures = 0;
    // The memory store with a pull that fails while `down`, as a Redis outage makes it fail.
    const store = new Proxy(memory, {
      get(target, prop, receiver) {
        if (prop === 'pullDispatchSignals') {
          return async (max: number, expires: number) => {
            if (down) {
              failures++;
              throw StorageError.io('Redis at 127.0.0.1:6379 is unreachable: connect ECONNREFUSED');
            }
            return target.pullDispatchSignals(max, expires);
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as MailboxStore;
    const lines: Line[] = [];
    const mailbox = new Mailbox({
      store,
      executor: async () => ({ kind: 'completed' }),
      logger: recordingLogger(lines),
      config: { signalFetchExpiresMs: 50 },
    });
    await mailbox.start();
    try {
      // 250 ms between retries: 8 failures is about 2 s of outage (the issue saw 26 lines in 3 s).
      await eventually(() => failures >= 8, 20_000, '8 failed pulls');
      const about = (l: Line): boolean => l.msg.startsWith('dispatch signal pull');
      expect(lines.filter(about).map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'dispatch signal pull failing (retrying; logged again when it recovers)'],
      ]);
      down = false;
      await eventually(
        () => lines.some((l) => l.level === 'info' && l.msg === 'dispatch signal pull recovered'),
        20_000,
        'the recovery line',
      );
      const pullLines = lines.filter(about);
      expect(pullLines.map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'dispatch signal pull failing (retrying; logged again when it recovers)'],
        ['info', 'dispatch signal pull recovered'],
      ]);
      expect(pullLines[1]?.fields.failures).toBeGreaterThanOrEqual(8);
      expect(pullLines[0]?.fields.error).toMatch(/Redis at 127\.0\.0\.1:6379 is unreachable/);
    } finally {
      await mailbox.stop();
      await memory.close();
    }
  });

  it('a periodic task (the idle poll of a store without signals) failing every tick: one warning, one recovery line', async () => {
    const memory = new MemoryMailboxStore({ signals: false });
    let down = false;
    let failures = 0;
    const store = new Proxy(memory, {
      get(target, prop, receiver) {
        if (prop === 'queuedThreadIds') {
          return async () => {
            if (down) {
              failures++;
              throw StorageError.io('Redis at 127.0.0.1:6379 is unreachable: connect ECONNREFUSED');
            }
            return target.queuedThreadIds();
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as MailboxStore;
    const lines: Line[] = [];
    const mailbox = new Mailbox({
      store,
      executor: async () => ({ kind: 'completed' }),
      logger: recordingLogger(lines),
      config: { idlePollIntervalMs: 20 },
    });
    await mailbox.start();
    try {
      down = true;
      await eventually(() => failures >= 10, 20_000, '10 failed idle polls');
      const about = (l: Line): boolean => l.msg.startsWith('idle poll');
      expect(lines.filter(about).map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'idle poll failing (retrying; logged again when it recovers)'],
      ]);
      down = false;
      await eventually(
        () => lines.some((l) => l.level === 'info' && l.msg === 'idle poll recovered'),
        20_000,
        'the recovery line',
      );
      expect(lines.filter(about).map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'idle poll failing (retrying; logged again when it recovers)'],
        ['info', 'idle poll recovered'],
      ]);
    } finally {
      await mailbox.stop();
      await memory.close();
    }
  });

  it('OutageLog: a reminder at most once per reminder interval while the outage lasts', () => {
    let now = 0;
    const lines: Line[] = [];
    const log = new OutageLog(recordingLogger(lines), 'sweep', { reminderMs: 1000, now: () => now });
    for (now = 0; now < 2500; now += 100) log.failed(new Error('boom'));
    log.succeeded();
    log.succeeded();
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'sweep failing (retrying; logged again when it recovers)'],
      ['warn', 'sweep still failing'],
      ['warn', 'sweep still failing'],
      ['info', 'sweep recovered'],
    ]);
    expect(lines[3]?.fields).toMatchObject({ failures: 25, failedForMs: 2500, lastError: 'boom' });
  });
});

describe('bad input names the field', () => {
  const memory = new MemoryMailboxStore();
  afterAll(() => memory.close());

  it.each([
    [{ Messages: [{ role: 'alien', content: [] }] }, 'command.Messages.0.role'],
    [
      { Messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] },
      'command.Messages.0.content.0.text',
    ],
    [{ Messages: [{ role: 'user', content: [{ type: 'bogus' }] }] }, 'command.Messages.0.content.0.type'],
    [{ Messages: 'hello' }, 'command.Messages'],
    [{ Decision: [['call-1', { action: 'maybe' }]] }, 'command.Decision.0.1.action'],
  ])('a live command %j → Validation naming %s', async (command, field) => {
    const err = await failure(memory.deliverLive('t', command as never));
    expect(err.kind).toBe('Validation');
    expect(err.detail.startsWith(`${field}: `), err.detail).toBe(true);
    expect(err.detail).not.toContain('must be a LiveRunCommand');
  });

  it('a value that fits no kind of command still says what a command is', async () => {
    const err = await failure(memory.deliverLive('t', { Bogus: 1 } as never));
    expect(err.detail).toBe(
      'command: must be a LiveRunCommand (Cancel | PendingBoundaryWake | {Messages} | {Decision})',
    );
  });

  it('Mailbox.sendMessages with a bad message names the field in that message', async () => {
    const mailbox = new Mailbox({ store: memory, executor: async () => ({ kind: 'completed' }) });
    const err = await failure(
      mailbox.sendMessages('t', [
        { role: 'user', content: [{ type: 'text', text: 'fine' }] },
        { role: 'user', content: [{ type: 'text' }] },
      ] as never),
    );
    expect(err.kind).toBe('Validation');
    expect(err.detail).toMatch(/Messages\.1\.content\.0\.text: /);
  });
});

describe('Mailbox config mistakes are ConfigError', () => {
  const memory = new MemoryMailboxStore();
  afterAll(() => memory.close());
  const executor = async () => ({ kind: 'completed' as const });

  it.each([
    [
      { concurency: 4 },
      'config.concurency',
      /config\.concurency: unknown option \(did you mean concurrency\?\)/,
    ],
    [{ leaseMS: 5000 }, 'config.leaseMS', /did you mean leaseMs\?/],
    [{ leaseMs: '5000' }, 'config.leaseMs', /config\.leaseMs: .*expected number, received string/],
    [{ wibble: true }, 'config.wibble', /unknown option \(the options are leaseMs, /],
    [{ leaseMs: 1000, leaseRenewalIntervalMs: 2000 }, 'config.leaseRenewalIntervalMs', /shorter than/],
  ])('%j → ConfigError on %s', (config, key, message) => {
    let caught: unknown;
    try {
      new Mailbox({ store: memory, executor, config: config as never });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect(caught).not.toBeInstanceOf(StorageError);
    expect((caught as ConfigError).key).toBe(key);
    expect((caught as ConfigError).kind).toBe('Validation');
    expect((caught as Error).message).toMatch(message);
  });
});

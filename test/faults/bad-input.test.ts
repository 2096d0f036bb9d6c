/**
 * Fault 6 (API half) — a fast-check sweep of junk arguments at every public method of the memory store and the
 * Redis store (with NATS for the live methods).
 *
 * Each generated call knows whether its arguments are valid, invalid, or "either" (lone surrogates: the Redis
 * store refuses them because Redis stores UTF-8, the memory store may accept them). The rules:
 * - invalid → the returned promise rejects with `StorageError` kind `Validation`, and nothing changed (a
 *   snapshot of the store through its API — and, for Redis, a DUMP of every key of the namespace — is equal
 *   before and after);
 * - valid → success, or a StorageError the method may legitimately raise for those values (NotFound,
 *   VersionConflict, AlreadyExists, Validation such as a run_id mismatch) — never Io or Serialization;
 * - always: a promise (no synchronous throw), never a non-StorageError, never a hang.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_BATCH,
  MAX_ID_LENGTH,
  MAX_OFFSET,
  MAX_PULL_EXPIRES_MS,
  MAX_TEXT_LENGTH,
} from '../../src/contract/args.js';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import { RUN_DISPATCH_STATUSES } from '../../src/contract/types.js';
import type { LiveRunCommandStream } from '../../src/contract/types.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { HangError, Servers, describeError, disposeStores, within } from './support.js';

type Validity = 'valid' | 'invalid' | 'either';
interface Arg {
  value: unknown;
  validity: Validity;
}

const valid = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Arg> =>
  a.map((value) => ({ value, validity: 'valid' as const }));
const invalid = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Arg> =>
  a.map((value) => ({ value, validity: 'invalid' as const }));
const either = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Arg> =>
  a.map((value) => ({ value, validity: 'either' as const }));
/** Junk about as often as valid values, so most calls exercise validation. */
const mix = (good: fc.Arbitrary<Arg>, bad: fc.Arbitrary<Arg>, maybe?: fc.Arbitrary<Arg>): fc.Arbitrary<Arg> =>
  fc.oneof(
    { weight: 4, arbitrary: good },
    { weight: 5, arbitrary: bad },
    ...(maybe ? [{ weight: 1, arbitrary: maybe }] : []),
  );

// ---- values ----

const HUGE_TEXT = 'x'.repeat(MAX_TEXT_LENGTH + 1);
const LONG_ID = 'i'.repeat(MAX_ID_LENGTH + 1);
const MAX_ID = 'm'.repeat(MAX_ID_LENGTH);

/** Anything that is not a string. */
const notString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constantFrom(null, undefined, NaN, Infinity, -Infinity, 5n, Symbol('id'), () => 'id', new Date(0)),
  fc.constantFrom(
    {},
    [],
    ['a'],
    { toString: () => 'looks-like-a-string' },
    new String('boxed'),
    Buffer.from('buf'),
  ),
  fc.object({ maxDepth: 2 }),
  fc.array(fc.string(), { maxLength: 3 }),
);

const blankString = fc
  .array(fc.constantFrom(' ', '\t', '\n', '\r', '\u000b', '\u000c', '\u00a0', '\u2028', '\ufeff', '\u3000'), {
    maxLength: 6,
  })
  .map((cs) => cs.join(''));

const idJunk = invalid(fc.oneof(notString, blankString, fc.constantFrom(LONG_ID, HUGE_TEXT)));
const idGood = valid(
  fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).filter((s) => s.trim().length > 0),
    fc.constantFrom(
      'a.b',
      '*',
      '>',
      'a.*.>',
      'dispatch.>',
      ' padded ',
      'tab\tid',
      'nul\u0000id',
      'esc\u001b[31mred',
      'del\u007f',
      'emoji 🎉',
      'a:b:{c}',
      'awaken:{x}:d:y',
      MAX_ID,
    ),
  ),
);
const idMaybe = either(fc.constantFrom('\ud800lone', 'tail\udfff', 'a\udc00b'));
const id = mix(idGood, idJunk, idMaybe);

const numberJunk = fc.oneof(
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -1,
    1.5,
    0.1,
    -0.5,
    2 ** 53,
    2 ** 64,
    Number.MAX_VALUE,
    -Number.MAX_SAFE_INTEGER,
  ),
  fc.integer({ max: -1 }),
  fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.constantFrom('5', '0', '', null, undefined, 5n, {}, [], [5], true, new Date(5), new Number(5)),
);
const u64Junk = invalid(numberJunk);
const u64Good = valid(
  fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom(0, 1, Number.MAX_SAFE_INTEGER)),
);
const u64 = mix(u64Good, u64Junk);
/** Durations (lease, extension): kept small when valid so `now + ms` stays safe unless `now` is huge. */
const msGood = valid(fc.oneof(fc.integer({ min: 0, max: 600_000 }), fc.constant(0)));
const ms = mix(msGood, u64Junk);
const limit = mix(
  valid(fc.integer({ min: 0, max: MAX_BATCH })),
  invalid(fc.oneof(numberJunk, fc.integer({ min: MAX_BATCH + 1, max: 2 ** 40 }))),
);
const offset = mix(
  valid(fc.integer({ min: 0, max: MAX_OFFSET })),
  invalid(fc.oneof(numberJunk, fc.integer({ min: MAX_OFFSET + 1, max: 2 ** 40 }))),
);
/** Pull `expires`: short when valid (a valid pull really waits). */
const expires = mix(
  valid(fc.integer({ min: 0, max: 30 })),
  invalid(fc.oneof(numberJunk, fc.integer({ min: MAX_PULL_EXPIRES_MS + 1, max: 2 ** 40 }))),
);
const text = mix(valid(fc.string({ maxLength: 40 })), invalid(fc.oneof(notString, fc.constant(HUGE_TEXT))));
const status = mix(
  valid(fc.constantFrom(...RUN_DISPATCH_STATUSES)),
  invalid(fc.oneof(fc.constantFrom('queued', 'ACKED', 'Running', '', ' Queued'), notString)),
);
const statusFilter = mix(
  valid(fc.oneof(fc.constantFrom(null, undefined), fc.subarray([...RUN_DISPATCH_STATUSES]))),
  invalid(
    fc.oneof(
      fc.constantFrom(
        'Queued',
        5,
        {},
        ['Bogus'],
        [null],
        [5],
        ['Queued', 'queued'],
        Array(17).fill('Queued'),
      ),
      fc.object({ maxDepth: 1 }),
    ),
  ),
);

const goodDispatch = fc
  .record({
    d: idGood,
    t: idGood,
    r: idGood,
    at: fc.integer({ min: 0, max: 2 ** 40 }),
    p: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ d, t, r, at, p }) =>
    queuedDispatch({
      dispatch_id: d.value as string,
      thread_id: t.value as string,
      run_id: r.value as string,
      created_at: at,
      priority: p,
    }),
  );
const dispatchCorruptions: [string, unknown][] = [
  ['dispatch_id', 5],
  ['dispatch_id', ''],
  ['dispatch_id', '  '],
  ['dispatch_id', LONG_ID],
  ['thread_id', null],
  ['thread_id', '\t'],
  ['thread_id', LONG_ID],
  ['run_id', {}],
  ['run_id', ''],
  ['created_at', -1],
  ['created_at', 1.5],
  ['created_at', NaN],
  ['created_at', '1'],
  ['created_at', 2 ** 53],
  ['updated_at', -5],
  ['available_at', Infinity],
  ['priority', 256],
  ['priority', -1],
  ['priority', 1.5],
  ['priority', '128'],
  ['max_attempts', 0],
  ['max_attempts', -1],
  ['max_attempts', 2.5],
  ['attempt_count', -1],
  ['attempt_count', 0.5],
  ['attempt_count', 99],
  ['dispatch_epoch', -1],
  ['status', 'Bogus'],
  ['status', 'Claimed'],
  ['status', 'Acked'],
  ['dedupe_key', 5],
  ['dedupe_key', ''],
  ['dedupe_key', LONG_ID],
  ['last_error', 7],
  ['last_error', HUGE_TEXT],
  ['claim_token', 'smuggled-token'],
  ['claimed_by', 'smuggled-consumer'],
  ['lease_until', 5],
  ['completed_at', 5],
  ['run_status', 'done'],
  ['run_status', 'bogus'],
  ['termination', { type: 'bogus' }],
  ['termination', 'natural_end'],
  ['run_response', 5],
];
const dispatch = mix(
  valid(goodDispatch),
  invalid(
    fc.oneof(
      fc.constantFrom(null, undefined, 5, 'dispatch', [], {}, { dispatch_id: 'only-id' }),
      fc
        .tuple(goodDispatch, fc.constantFrom(...dispatchCorruptions))
        .map(([d, [field, v]]) => ({ ...d, [field]: v })),
      goodDispatch.map((d) => {
        const { run_id: _dropped, ...rest } = d;
        return rest;
      }),
    ),
  ),
);

const goodResult = fc
  .record({ i: idGood, s: fc.constantFrom('created', 'running', 'waiting', 'done') })
  .map(({ i, s }) => ({ run_id: 'seed-run', dispatch_instance_id: i.value as string, status: s }));
const result = mix(
  valid(goodResult),
  invalid(
    fc.oneof(
      fc.constantFrom(null, 5, 'done', [], {}),
      fc
        .tuple(
          goodResult,
          fc.constantFrom<[string, unknown]>(
            ['status', 'bogus'],
            ['status', 5],
            ['run_id', 5],
            ['run_id', ''],
            ['run_id', LONG_ID],
            ['dispatch_instance_id', ''],
            ['dispatch_instance_id', null],
            ['termination', { type: 'bogus' }],
            ['termination', { type: 'error' }],
            ['response', 5],
            ['response', HUGE_TEXT],
            ['error', {}],
          ),
        )
        .map(([r, [field, v]]) => ({ ...r, [field]: v })),
    ),
  ),
);

const command = mix(
  valid(
    fc.constantFrom('Cancel', 'PendingBoundaryWake', {
      Messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
    }),
  ),
  invalid(
    fc.oneof(
      fc.constantFrom(
        'Bogus',
        'cancel',
        '',
        { Bogus: 1 },
        { Cancel: 1 },
        { Messages: 'hi' },
        { Messages: [{ role: 'alien', content: [] }] },
        { Messages: [{ role: 'user', content: [{ type: 'bogus' }] }] },
        { Decision: 5 },
        { Decision: [[1]] },
        { Messages: [], Decision: [] },
        null,
        undefined,
        5,
        [],
        {},
      ),
      fc.object({ maxDepth: 2 }).filter((o) => !('Messages' in o) && !('Decision' in o)),
    ),
  ),
);

const target = mix(
  valid(
    fc.record({ t: idGood, r: idGood, d: fc.option(idGood, { nil: undefined }) }).map(({ t, r, d }) => ({
      thread_id: t.value,
      run_id: r.value,
      ...(d ? { dispatch_id: d.value } : {}),
    })),
  ),
  invalid(
    fc.constantFrom(
      null,
      'thread',
      5,
      [],
      {},
      { thread_id: 't' },
      { run_id: 'r' },
      { thread_id: 5, run_id: 'r' },
      { thread_id: '', run_id: 'r' },
      { thread_id: 't', run_id: ' ' },
      { thread_id: 't', run_id: 'r', dispatch_id: 5 },
      { thread_id: 't', run_id: 'r', dispatch_id: '' },
      { thread_id: LONG_ID, run_id: 'r' },
      { thread_id: 't', run_id: 'r', dispatch_id: LONG_ID },
    ),
  ),
);

// ---- calls ----

interface Call {
  method: string;
  args: Arg[];
}

const call = (method: string, ...argArbs: fc.Arbitrary<Arg>[]): fc.Arbitrary<Call> =>
  fc.tuple(...argArbs).map((args) => ({ method, args }));

const CALLS: fc.Arbitrary<Call> = fc.oneof(
  call('enqueue', dispatch),
  call('claim', id, id, ms, u64, limit),
  call('claimDispatch', id, id, ms, u64),
  call('ack', id, id, u64),
  call('recordDispatchStart', id, id, id, u64),
  call('recordRunResult', id, id, result, u64),
  call('nack', id, id, u64, text, u64),
  call('deadLetter', id, id, text, u64),
  call('cancel', id, u64),
  call('extendLease', id, id, ms, u64),
  call('interrupt', id, u64),
  call('interruptDetailed', id, u64),
  call('currentDispatchEpoch', id),
  call('supersedeClaimed', id, id, u64, text),
  call('loadDispatch', id),
  call('listDispatches', id, statusFilter, limit, offset),
  call('countDispatchesByStatus', status),
  call('listTerminalDispatches', limit, offset),
  call('reclaimExpiredLeases', u64, limit),
  call('purgeTerminal', u64),
  call('pullDispatchSignals', limit, expires),
  call('deliverLive', id, command),
  call('deliverLiveTo', target, command),
  call('openLiveChannel', id),
  call('openLiveChannelFor', target),
);

/** Argument positions of `(now, delta)` pairs whose sum must stay a safe integer. */
const DEADLINES: Record<string, [number, number]> = {
  claim: [3, 2],
  claimDispatch: [3, 2],
  extendLease: [3, 2],
};

function validityOf(c: Call): Validity {
  if (c.args.some((a) => a.validity === 'invalid')) return 'invalid';
  const pair = DEADLINES[c.method];
  if (pair) {
    const now = c.args[pair[0]]!.value as number;
    const delta = c.args[pair[1]]!.value as number;
    if (!Number.isSafeInteger(now + delta)) return 'invalid';
  }
  return c.args.some((a) => a.validity === 'either') ? 'either' : 'valid';
}

function show(c: Call): string {
  const one = (v: unknown): string => {
    if (typeof v === 'string')
      return v.length > 60 ? `"${v.slice(0, 20)}…" (${v.length} chars)` : JSON.stringify(v);
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'symbol' || typeof v === 'function') return String(v);
    try {
      const s = JSON.stringify(v, (_k, x: unknown) =>
        typeof x === 'string' && x.length > 60 ? `${x.slice(0, 20)}…(${x.length})` : x,
      );
      return s === undefined ? String(v) : s;
    } catch {
      return String(v);
    }
  };
  return `${c.method}(${c.args.map((a) => `${one(a.value)}:${a.validity}`).join(', ')})`;
}

// ---- stores and snapshots ----

const SEED_THREADS = ['seed-a', 'seed.b*', 'seed>c'];

async function seed(store: MailboxStore): Promise<void> {
  const mk = (d: string, t: string, at: number, extra: Record<string, unknown> = {}) =>
    store.enqueue(
      queuedDispatch({ dispatch_id: d, thread_id: t, run_id: 'seed-run', created_at: at, ...extra }),
    );
  await mk('seed-q1', 'seed-a', 10);
  await mk('seed-q2', 'seed-a', 20, { dedupe_key: 'k1' });
  await mk('seed-c1', 'seed.b*', 10);
  await store.claim('seed.b*', 'seed-consumer', 1_000_000, 100, 1);
  await mk('seed-q3', 'seed.b*', 30);
  await mk('seed-t1', 'seed>c', 10);
  const [c] = await store.claim('seed>c', 'seed-consumer', 1_000_000, 100, 1);
  await store.ack('seed-t1', c!.claim_token!, 200);
  await mk('seed-f1', 'seed>c', 40, { available_at: 10_000_000 });
  await store.interrupt('seed-empty', 50);
}

async function apiSnapshot(store: MailboxStore): Promise<unknown> {
  const counts: Record<string, number> = {};
  for (const s of RUN_DISPATCH_STATUSES) counts[s] = await store.countDispatchesByStatus(s);
  const threads: Record<string, unknown> = {};
  for (const t of [...SEED_THREADS, 'seed-empty']) {
    threads[t] = {
      epoch: await store.currentDispatchEpoch(t),
      list: await store.listDispatches(t, null, MAX_BATCH, 0),
    };
  }
  return {
    counts,
    threads,
    queued: await store.queuedThreadIds(),
    terminal: await store.listTerminalDispatches(MAX_BATCH, 0),
  };
}

/** Every key of the namespace with its type and DUMP (byte-exact value). */
async function rawSnapshot(redis: Redis, pattern: string): Promise<Record<string, string>> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  keys.sort();
  const out: Record<string, string> = {};
  for (const key of keys) {
    const dumped = await redis.dumpBuffer(key);
    out[key] = dumped ? dumped.toString('base64') : '<gone>';
  }
  return out;
}

interface Subject {
  store: MailboxStore;
  snapshot(): Promise<unknown>;
}

const opened: LiveRunCommandStream[] = [];

async function sweep(subject: Subject, runs: number): Promise<void> {
  const counts = { valid: 0, invalid: 0, either: 0 };
  await fc.assert(
    fc.asyncProperty(CALLS, async (c) => {
      const validity = validityOf(c);
      counts[validity]++;
      const before = validity === 'valid' ? null : await subject.snapshot();
      const fn = (subject.store as unknown as Record<string, (...a: unknown[]) => unknown>)[c.method]!;
      let returned: unknown;
      try {
        returned = fn.apply(
          subject.store,
          c.args.map((a) => a.value),
        );
      } catch (err) {
        throw new Error(`${show(c)} threw synchronously instead of rejecting: ${describeError(err)}`, {
          cause: err,
        });
      }
      if (!(returned instanceof Promise)) throw new Error(`${show(c)} did not return a promise`);
      let ok = true;
      let value: unknown;
      let error: unknown;
      try {
        value = await within(returned, 10_000, show(c));
      } catch (err) {
        ok = false;
        error = err;
      }
      if (
        ok &&
        value &&
        typeof value === 'object' &&
        typeof (value as LiveRunCommandStream).close === 'function'
      ) {
        opened.push(value as LiveRunCommandStream);
        await (value as LiveRunCommandStream).close();
      }
      if (error instanceof HangError) throw error;
      if (!ok && !(error instanceof StorageError)) {
        throw new Error(`${show(c)} rejected with a non-StorageError: ${describeError(error)}`);
      }
      const kind = ok ? null : (error as StorageError).kind;
      if (validity === 'invalid') {
        if (ok) throw new Error(`${show(c)} accepted invalid input (returned ${describeValue(value)})`);
        if (kind !== 'Validation')
          throw new Error(`${show(c)} → ${describeError(error)}, expected Validation`);
      } else if (kind === 'Io' || kind === 'Serialization') {
        throw new Error(`${show(c)} → ${describeError(error)}`);
      } else if (
        validity === 'either' &&
        !ok &&
        kind !== 'Validation' &&
        kind !== 'NotFound' &&
        kind !== 'VersionConflict'
      ) {
        throw new Error(`${show(c)} → ${describeError(error)}`);
      }
      if (before !== null && !ok && kind === 'Validation') {
        const after = await subject.snapshot();
        expect(after, `${show(c)} failed with Validation but changed the store`).toEqual(before);
      }
    }),
    { numRuns: runs, endOnFailure: true },
  );
  // The sweep must actually have exercised both sides.
  expect(counts.invalid).toBeGreaterThan(runs / 3);
  expect(counts.valid).toBeGreaterThan(runs / 20);
}

function describeValue(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.slice(0, 200);
  } catch {
    return String(v);
  }
}

const servers = new Servers();
let redisServer: SpawnedServer;
let natsServer: SpawnedServer;
let redisStore: RedisMailboxStore;
let memoryStore: MemoryMailboxStore;
let rawRedis: Redis;
const namespace = testNamespace('fault-badinput');

beforeAll(async () => {
  [redisServer, natsServer] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  // No background writes during the sweep: the sweeper would change keys between two snapshots.
  redisStore = await createMailboxStore({
    redis: redisServer.url,
    nats: natsServer.url,
    namespace,
    sweepIntervalMs: 86_400_000,
    republishAfterMs: 86_400_000,
    liveRequestTimeoutMs: 500,
  });
  memoryStore = new MemoryMailboxStore();
  rawRedis = new Redis(redisServer.url);
  await seed(redisStore);
  await seed(memoryStore);
});

afterAll(async () => {
  await Promise.allSettled(opened.map((s) => s.close()));
  rawRedis?.disconnect();
  await disposeStores(redisStore ? [redisStore] : []);
  await memoryStore?.close().catch(() => undefined);
  await servers.stopAll();
});

describe('junk arguments at every public method', () => {
  it(
    'memory store: Validation (state untouched) or a legitimate outcome, never a crash or hang',
    { timeout: 60_000 },
    async () => {
      await sweep({ store: memoryStore, snapshot: () => apiSnapshot(memoryStore) }, 1500);
    },
  );

  it(
    'Redis store: Validation (no key touched) or a legitimate outcome, never a crash or hang',
    { timeout: 60_000 },
    async () => {
      const pattern = redisStore.keys.pattern;
      await sweep(
        {
          store: redisStore,
          snapshot: async () => ({
            api: await apiSnapshot(redisStore),
            raw: await rawSnapshot(rawRedis, pattern),
          }),
        },
        600,
      );
    },
  );

  it('invalid options: Validation from createMailboxStore, nothing opened', async () => {
    const bad: unknown[] = [
      null,
      5,
      'redis://x',
      {},
      { redis: 5 },
      { redis: '' },
      { redis: redisServer.url, namespace: 'has.dot' },
      { redis: redisServer.url, namespace: 'a*' },
      { redis: redisServer.url, namespace: '' },
      { redis: redisServer.url, namespace: 'x'.repeat(500) },
      { redis: redisServer.url, signals: 'jetstream' },
      { redis: redisServer.url, signals: 'kafka' },
      { redis: redisServer.url, commandTimeoutMs: -1 },
      { redis: redisServer.url, commandTimeoutMs: NaN },
      { redis: redisServer.url, commandTimeoutMs: 1.5 },
      { redis: redisServer.url, sweepIntervalMs: Infinity },
      { redis: redisServer.url, republishAfterMs: 0 },
      { redis: redisServer.url, unknownOption: true },
      { redis: redisServer.url, nats: 5 },
      { redis: redisServer.url, nats: natsServer.url, liveSubjectPrefix: 'a.*' },
    ];
    for (const options of bad) {
      const outcome = await within(
        createMailboxStore(options as Parameters<typeof createMailboxStore>[0]).then(
          async (s) => {
            await s.close();
            return null;
          },
          (e: unknown) => e,
        ),
        10_000,
        `createMailboxStore(${describeValue(options)})`,
      );
      expect(outcome, `createMailboxStore(${describeValue(options)})`).toBeInstanceOf(StorageError);
      expect(
        (outcome as StorageError).kind,
        `createMailboxStore(${describeValue(options)}): ${describeError(outcome)}`,
      ).toBe('Validation');
    }
  });
});

/**
 * Fault 5 — redis-server stalls (SIGSTOP): the TCP connection stays open but nothing answers.
 *
 * Every store call must fail with `StorageError` kind `Io` within `commandTimeoutMs` (plus scheduling slack),
 * never hang; after SIGCONT the same store works again and the data written before the stall is intact.
 */
import type { CancelRequestMailboxStore } from '../../src/contract/cancel-requests.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, attempt, describeError, disposeStores, eventually } from './support.js';
import type { Outcome } from './support.js';

const COMMAND_TIMEOUT_MS = 800;
/** Scheduling slack on a loaded 2-core machine. */
const SLACK_MS = 2500;
/** A call still pending after this is a hang. */
const HANG_MS = 15_000;
const PULL_EXPIRES_MS = 300;

const servers = new Servers();
let redis: SpawnedServer;
let store: RedisMailboxStore;
const namespace = testNamespace('fault-stall');

beforeAll(async () => {
  redis = servers.add(await spawnRedis());
  store = await createMailboxStore({
    redis: redis.url,
    namespace,
    signals: 'redis-streams',
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    sweepIntervalMs: 200,
  });
});

afterAll(async () => {
  try {
    redis?.signal('SIGCONT');
  } catch {
    /* gone */
  }
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

type Call = [name: string, run: (s: MailboxStore, round: number) => Promise<unknown>];

/** One of every kind of store call: scripts, plain reads, pipelines and the blocking signal read. */
const CALLS: Call[] = [
  [
    'enqueue',
    (s, r) =>
      s.enqueue(
        queuedDispatch({ dispatch_id: `stall-new-${r}`, thread_id: 'stall-t', run_id: 'r', created_at: 1 }),
      ),
  ],
  ['claim', (s) => s.claim('stall-t', 'c', 1000, Date.now(), 1)],
  ['claimDispatch', (s) => s.claimDispatch('stall-d1', 'c', 1000, Date.now())],
  ['ack', (s) => s.ack('stall-d1', 'token', Date.now())],
  ['nack', (s) => s.nack('stall-d1', 'token', Date.now(), 'e', Date.now())],
  ['extendLease', (s) => s.extendLease('stall-d1', 'token', 1000, Date.now())],
  ['cancel', (s) => s.cancel('stall-d1', Date.now())],
  ['interruptDetailed', (s) => s.interruptDetailed('stall-other', Date.now())],
  ['currentDispatchEpoch', (s) => s.currentDispatchEpoch('stall-t')],
  ['readRunControl', (s) => (s as CancelRequestMailboxStore).readRunControl('stall-t')],
  ['requestRunCancel', (s) => (s as CancelRequestMailboxStore).requestRunCancel('stall-d1', 'token')],
  ['loadDispatch', (s) => s.loadDispatch('stall-d1')],
  ['listDispatches', (s) => s.listDispatches('stall-t', null, 10, 0)],
  ['countDispatchesByStatus', (s) => s.countDispatchesByStatus('Queued')],
  ['listTerminalDispatches', (s) => s.listTerminalDispatches(10, 0)],
  ['reclaimExpiredLeases', (s) => s.reclaimExpiredLeases(Date.now(), 10)],
  ['purgeTerminal', (s) => s.purgeTerminal(0)],
  ['queuedThreadIds', (s) => s.queuedThreadIds()],
];

async function runAll(round: number): Promise<[string, Outcome<unknown>][]> {
  return Promise.all(
    CALLS.map(async ([name, run]): Promise<[string, Outcome<unknown>]> => [
      name,
      await attempt(() => run(store, round), HANG_MS, name),
    ]),
  );
}

function expectIoWithinBound(name: string, outcome: Outcome<unknown>, boundMs: number): void {
  if (outcome.ok)
    throw new Error(`${name}: succeeded against a stalled server (${JSON.stringify(outcome.value)})`);
  expect(outcome.error, `${name}: ${describeError(outcome.error)}`).toBeInstanceOf(StorageError);
  expect((outcome.error as StorageError).kind, `${name}: ${describeError(outcome.error)}`).toBe('Io');
  expect(outcome.ms, `${name} took ${outcome.ms} ms`).toBeLessThanOrEqual(boundMs);
}

describe('redis-server stalled (SIGSTOP / SIGCONT)', () => {
  it('fails every call with Io within the command timeout, then recovers', { timeout: 60_000 }, async () => {
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'stall-d1', thread_id: 'stall-t', run_id: 'r', created_at: 1 }),
    );
    const before = await store.loadDispatch('stall-d1');
    expect(before?.status).toBe('Queued');

    redis.signal('SIGSTOP');
    try {
      // Twice: the second round runs on a connection that already has timed-out commands queued on it.
      for (const round of [1, 2]) {
        const results = await runAll(round);
        for (const [name, outcome] of results) {
          expectIoWithinBound(`round ${round}: ${name}`, outcome, COMMAND_TIMEOUT_MS + SLACK_MS);
        }
      }
      // The signal pull waits `expires` on its own blocking connection; it too must give up with Io.
      const pull = await attempt(
        () => store.pullDispatchSignals(10, PULL_EXPIRES_MS),
        HANG_MS,
        'pullDispatchSignals',
      );
      expectIoWithinBound(
        'pullDispatchSignals',
        pull,
        PULL_EXPIRES_MS + COMMAND_TIMEOUT_MS + 5000 + SLACK_MS,
      );
    } finally {
      redis.signal('SIGCONT');
    }

    // Same store object, working again.
    await eventually(
      async () => (await store.loadDispatch('stall-d1')) !== null,
      15_000,
      'the store to answer again',
    );
    // Commands that timed out may still run once Redis wakes up (Io means "outcome unknown"), so the thread
    // used during the stall is left alone; a fresh one must go through the whole claim cycle.
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'after-stall', thread_id: 'after-t', run_id: 'r', created_at: 1 }),
    );
    const [claimed] = await store.claim('after-t', 'after-stall', 10_000, Date.now(), 1);
    expect(claimed?.dispatch_id).toBe('after-stall');
    await store.ack('after-stall', claimed!.claim_token!, Date.now());
    expect((await store.loadDispatch('after-stall'))?.status).toBe('Acked');
    await eventually(
      async () => (await attempt(() => store.pullDispatchSignals(10, 100), 10_000)).ok,
      15_000,
      'signal pulls after the stall',
    );
  });
});

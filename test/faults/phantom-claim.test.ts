/**
 * A claim whose reply was lost: redis-server pauses every client (`CLIENT PAUSE 800 ALL`) right as a claim is
 * sent, the client gives up after `commandTimeoutMs` (300 ms) with `Io`, and the claim commits anyway once
 * the pause ends. Nobody knows its token but the Mailbox that minted it, so the Mailbox releases it as soon
 * as Redis answers again: the thread is not held for the lease, no attempt is spent (`max_attempts: 1` would
 * dead-letter a dispatch that never ran), and the dispatch runs once, promptly.
 *
 * One case per claim variant the Mailbox makes: the thread claim (`claimAndStart`), the inline claim of a
 * foreground submit (`claimDispatchAndStart`) and the claim chained onto a completion
 * (`completeAndClaimNext`).
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, disposeStores, eventually, recordingExecutor } from './support.js';
import type { ExecRecord } from './support.js';

const COMMAND_TIMEOUT_MS = 300;
const PAUSE_MS = 800;
/** Long enough that waiting for the lease to expire would fail every assertion below. */
const LEASE_MS = 30_000;
/** Well under the lease: the dispatch must be done long before it would have expired. */
const DONE_WITHIN_MS = 10_000;

const servers = new Servers();
let redis: SpawnedServer;
let control: Redis;
const stores: RedisMailboxStore[] = [];
const mailboxes: Mailbox[] = [];

beforeAll(async () => {
  redis = servers.add(await spawnRedis());
  control = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await control.connect();
});

afterEach(async () => {
  await control.call('CLIENT', 'UNPAUSE').catch(() => undefined);
  await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
  await disposeStores(stores.splice(0));
});

afterAll(async () => {
  control?.disconnect();
  await servers.stopAll();
});

type ClaimMethod = 'claimAndStart' | 'claimDispatchAndStart' | 'completeAndClaimNext';

/**
 * The store, except that the first call of `method` is preceded by `CLIENT PAUSE 800 ALL`: the call reaches
 * Redis while every client is paused, times out client-side, and commits when the pause ends.
 */
function pausingOnce(
  store: RedisMailboxStore,
  method: ClaimMethod,
): { store: MailboxStore; paused: () => boolean } {
  let paused = false;
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop === method && !paused) {
        return async (...args: unknown[]) => {
          if (!paused) {
            paused = true;
            await control.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
          }
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { store: proxy, paused: () => paused };
}

async function setup(label: string, method: ClaimMethod, log: ExecRecord[], runMs = 50) {
  const store = await createMailboxStore({
    redis: redis.url,
    namespace: testNamespace(label),
    signals: 'redis-streams',
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    sweepIntervalMs: 200,
    republishAfterMs: 1_000,
  });
  stores.push(store);
  const pausing = pausingOnce(store, method);
  const mailbox = new Mailbox({
    store: pausing.store,
    executor: recordingExecutor('node-1', log, runMs),
    consumerId: 'node-1',
    config: {
      leaseMs: LEASE_MS,
      sweepIntervalMs: 200,
      signalFetchExpiresMs: 100,
      signalNackBaseDelayMs: 50,
      signalNackMaxDelayMs: 200,
      stopGraceMs: 1_000,
    },
  });
  mailboxes.push(mailbox);
  await mailbox.start();
  return { store, mailbox, paused: pausing.paused };
}

async function acked(store: MailboxStore, dispatchId: string): Promise<RunDispatch> {
  return eventually(
    async () => {
      const d = await store.loadDispatch(dispatchId);
      return d?.status === 'Acked' ? d : null;
    },
    DONE_WITHIN_MS,
    `dispatch ${dispatchId} to be Acked (a phantom claim would hold it for the ${LEASE_MS} ms lease)`,
  );
}

describe('a claim whose reply was lost (CLIENT PAUSE during the claim)', () => {
  it(
    'thread claim (claimAndStart): released at once, runs once, costs no attempt',
    { timeout: 30_000 },
    async () => {
      const log: ExecRecord[] = [];
      const { store, mailbox, paused } = await setup('phantom-thread', 'claimAndStart', log);
      await mailbox.submitBackground({ threadId: 't-1', dispatchId: 'd-1', runId: 'r-1', maxAttempts: 1 });
      const done = await acked(store, 'd-1');
      expect(paused()).toBe(true);
      expect(done.attempt_count).toBe(0);
      expect(log.map((e) => [e.dispatchId, e.attempt, e.outcome])).toEqual([['d-1', 1, 'completed']]);
    },
  );

  it(
    'inline claim of a foreground submit (claimDispatchAndStart): the submit fails with Io, the claim is released, the dispatch runs once',
    { timeout: 30_000 },
    async () => {
      const log: ExecRecord[] = [];
      const { store, mailbox, paused } = await setup('phantom-inline', 'claimDispatchAndStart', log);
      await expect(
        mailbox.submit({ threadId: 't-2', dispatchId: 'd-2', runId: 'r-2', maxAttempts: 1 }),
      ).rejects.toMatchObject({ kind: 'Io' });
      const done = await acked(store, 'd-2');
      expect(paused()).toBe(true);
      expect(done.attempt_count).toBe(0);
      expect(log.map((e) => [e.dispatchId, e.attempt, e.outcome])).toEqual([['d-2', 1, 'completed']]);
    },
  );

  it(
    'claim chained onto a completion (completeAndClaimNext): the next dispatch is released and runs once',
    { timeout: 30_000 },
    async () => {
      const log: ExecRecord[] = [];
      const { store, mailbox, paused } = await setup('phantom-chained', 'completeAndClaimNext', log, 300);
      await mailbox.submitBackground({ threadId: 't-3', dispatchId: 'd-3a', runId: 'r-3a', maxAttempts: 1 });
      // Queued behind the running d-3a: its claim is the one chained onto d-3a's completion.
      await eventually(() => log.length === 1, 5_000, 'd-3a to start');
      await mailbox.submitBackground({ threadId: 't-3', dispatchId: 'd-3b', runId: 'r-3b', maxAttempts: 1 });
      await acked(store, 'd-3a');
      const next = await acked(store, 'd-3b');
      expect(paused()).toBe(true);
      expect(next.attempt_count).toBe(0);
      expect(log.map((e) => [e.dispatchId, e.attempt, e.outcome])).toEqual([
        ['d-3a', 1, 'completed'],
        ['d-3b', 1, 'completed'],
      ]);
    },
  );
});

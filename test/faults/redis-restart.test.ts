/**
 * Fault 3 — redis-server is SIGKILLed under load and restarted from its AOF (`appendfsync always`).
 *
 * Redis is the source of truth (design.md §1): every enqueue that returned before the kill must be there after
 * the restart. The store and a running Mailbox (Redis Streams signals) must reconnect on their own — same
 * Node process, same objects — and keep working: the backlog drains and new submits complete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import {
  Servers,
  describeError,
  disposeStores,
  eventually,
  recordingExecutor,
  sleep,
  within,
} from './support.js';
import type { ExecRecord } from './support.js';

const LEASE_MS = 1500;
const COMMAND_TIMEOUT_MS = 1000;
const WRITERS = 4;

const servers = new Servers();
let redis: SpawnedServer;
let store: RedisMailboxStore;
let mailbox: Mailbox | null = null;
const namespace = testNamespace('fault-redis-restart');

beforeAll(async () => {
  redis = servers.add(await spawnRedis({ appendOnly: true }));
  store = await createMailboxStore({
    redis: redis.url,
    namespace,
    signals: 'redis-streams',
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    sweepIntervalMs: 300,
    republishAfterMs: 1000,
  });
});

afterAll(async () => {
  await mailbox?.stop().catch(() => undefined);
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

describe('redis-server SIGKILL + restart with AOF', () => {
  it(
    'keeps every acknowledged enqueue; store and Mailbox reconnect and carry on',
    { timeout: 60_000 },
    async () => {
      const log: ExecRecord[] = [];
      const completed: RunDispatch[] = [];
      mailbox = new Mailbox({
        store,
        executor: recordingExecutor('mailbox', log, 5),
        consumerId: 'restart-node',
        config: { leaseMs: LEASE_MS, sweepIntervalMs: 300, signalFetchExpiresMs: 200 },
      });
      mailbox.on('completed', (d: RunDispatch) => completed.push(d));
      await mailbox.start();

      const confirmed: string[] = [];
      const failed: { id: string; error: unknown }[] = [];
      let stopWriting = false;
      let seq = 0;
      const writer = async (w: number): Promise<void> => {
        while (!stopWriting) {
          const id = `aof-${w}-${seq++}`;
          try {
            await within(
              store.enqueue(
                queuedDispatch({
                  dispatch_id: id,
                  thread_id: `aof-thread-${seq % 16}`,
                  run_id: `run-${id}`,
                  created_at: Date.now(),
                }),
              ),
              COMMAND_TIMEOUT_MS + 5000,
              `enqueue ${id}`,
            );
            confirmed.push(id);
          } catch (error) {
            failed.push({ id, error });
            await sleep(20);
          }
        }
      };
      const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
      await eventually(() => confirmed.length >= 200, 20_000, '200 confirmed enqueues', 20);

      redis.signal('SIGKILL');
      const confirmedBeforeKill = confirmed.length;
      await sleep(500);
      stopWriting = true;
      await Promise.all(writers);
      // Writes while the server is gone fail as Io (never another kind, never a hang).
      const failedKinds = new Set(
        failed.map((f) => (isStorageError(f.error) ? f.error.kind : describeError(f.error))),
      );
      expect([...failedKinds].filter((k) => k !== 'Io')).toEqual([]);
      expect(failed.length).toBeGreaterThan(0);
      // Only writes that raced the kill itself can have been confirmed after it.
      expect(confirmed.length - confirmedBeforeKill).toBeLessThanOrEqual(WRITERS);

      await redis.restart();

      // Same store object: it reconnects by itself.
      await eventually(
        async () => (await store.countDispatchesByStatus('Queued')) >= 0,
        20_000,
        'store reconnect',
      );
      const missing: string[] = [];
      for (const id of confirmed) if ((await store.loadDispatch(id)) === null) missing.push(id);
      expect(missing).toEqual([]);

      // The running Mailbox carries on: a new submit completes...
      const fresh = await mailbox.submitBackground({
        threadId: 'after-restart',
        dispatchId: 'after-restart-1',
        runId: 'after-restart-run',
      });
      expect(fresh.dispatchId).toBe('after-restart-1');
      await eventually(
        async () => (await store.loadDispatch('after-restart-1'))?.status === 'Acked',
        20_000,
        'the post-restart submit to complete',
        100,
      );
      // ...and the backlog (including dispatches claimed or acked-in-flight when Redis died) drains to Acked.
      await eventually(
        async () =>
          (await store.countDispatchesByStatus('Queued')) === 0 &&
          (await store.countDispatchesByStatus('Claimed')) === 0,
        40_000,
        'the backlog to drain',
        250,
      );
      const notAcked: string[] = [];
      for (const id of confirmed) {
        const d = await store.loadDispatch(id);
        if (d?.status !== 'Acked') notAcked.push(`${id}:${d?.status ?? 'missing'}`);
      }
      expect(notAcked).toEqual([]);
      expect(completed.some((d) => d.dispatch_id === 'after-restart-1')).toBe(true);
    },
  );
});

/**
 * Fault 4c — dispatches enqueued while the NATS client is disconnected or reconnecting, with DEFAULT timers.
 *
 * nats.js drops core publishes made while the connection is down or reconnecting (observed with nats.js 3.4:
 * nothing reaches the server, no error is raised). Enqueue must still succeed (Redis is the source of truth),
 * and the signals must reach the work queue soon after the reconnect. With the default sweep interval (5 s)
 * that should take seconds; the 30 s republish delay must not apply to a signal that never left the process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, attempt, disposeStores, sleep, within } from './support.js';

/** Default sweep interval (5 s) plus generous slack; well under the default 30 s republish delay. */
const PROMPT_MS = 15_000;

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
let store: RedisMailboxStore;
const namespace = testNamespace('fault-nats-blip');

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  // Default sweepIntervalMs / republishAfterMs on purpose: this is what a deployment runs with.
  store = await createMailboxStore({ redis: redis.url, nats: nats.url, namespace });
});

afterAll(async () => {
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

describe('a NATS blip with default timers', () => {
  // nats.js silently drops publishes made during the blip while the enqueue script already marked them
  // signalled; the JetStream transport replays recent publishes on reconnect so they don't wait 30 s.
  it(
    'signals dispatches enqueued during the blip soon after the reconnect',
    { timeout: 60_000 },
    async () => {
      await store.enqueue(
        queuedDispatch({ dispatch_id: 'warm', thread_id: 'warm-t', run_id: 'r', created_at: 1 }),
      );
      for (const e of await store.pullDispatchSignals(10, 2000)) await e.receipt.ack();

      nats.signal('SIGKILL');
      await sleep(300);
      const ids = Array.from({ length: 6 }, (_, i) => `blip-${i}`);
      // Half while the server is gone, half while the client is still reconnecting to the restarted server.
      for (const id of ids.slice(0, 3)) {
        await within(
          store.enqueue(
            queuedDispatch({ dispatch_id: id, thread_id: `${id}-t`, run_id: 'r', created_at: 1 }),
          ),
          10_000,
          `enqueue ${id}`,
        );
      }
      await nats.restart();
      const restartedAt = Date.now();
      for (const id of ids.slice(3)) {
        await within(
          store.enqueue(
            queuedDispatch({ dispatch_id: id, thread_id: `${id}-t`, run_id: 'r', created_at: 1 }),
          ),
          10_000,
          `enqueue ${id}`,
        );
      }

      const seen = new Set<string>();
      while (Date.now() - restartedAt < PROMPT_MS && ids.some((id) => !seen.has(id))) {
        const got = await attempt(() => store.pullDispatchSignals(32, 500), 10_000);
        if (!got.ok) {
          await sleep(100);
          continue;
        }
        for (const e of got.value) {
          seen.add(e.dispatch_id);
          await e.receipt.ack();
        }
      }
      expect(ids.filter((id) => !seen.has(id))).toEqual([]);
    },
  );
});

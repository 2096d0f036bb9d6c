/**
 * Fault 4 — nats-server (JetStream file storage) is SIGKILLed and restarted.
 *
 * - Signals queued in JetStream before the kill are still there afterwards and can be pulled.
 * - A live channel opened before the kill receives again once the client reconnected (nats.js re-subscribes).
 * - While NATS is down, enqueue still succeeds (Redis is the source of truth, signals are best effort) and,
 *   once NATS is back, the sweeper signals those dispatches even if every earlier publish was lost.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { LiveRunCommand, LiveRunCommandStream, LiveRunTarget } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { signalStreamName } from '../../src/signals/jetstream.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, attempt, describeError, disposeStores, eventually, within } from './support.js';

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
/** Signals enqueued before the kill; never republished within the test (long republish delay). */
let durable: RedisMailboxStore;
/** Enqueues while NATS is down; short sweep / republish delays. */
let swept: RedisMailboxStore;
let raw: NatsConnection | null = null;
const nsDurable = testNamespace('fault-nats-durable');
const nsSwept = testNamespace('fault-nats-swept');

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  durable = await createMailboxStore({
    redis: redis.url,
    nats: nats.url,
    namespace: nsDurable,
    republishAfterMs: 3_600_000,
    sweepIntervalMs: 60_000,
    liveRequestTimeoutMs: 1000,
  });
  swept = await createMailboxStore({
    redis: redis.url,
    nats: nats.url,
    namespace: nsSwept,
    republishAfterMs: 1000,
    sweepIntervalMs: 300,
  });
});

afterAll(async () => {
  await raw?.close().catch(() => undefined);
  await disposeStores([durable, swept].filter((s) => s !== undefined));
  await servers.stopAll();
});

async function streamMessages(nc: NatsConnection, namespace: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(signalStreamName(namespace));
  return info.state.messages;
}

/** Pull (acking) until every id in `want` was seen; returns everything seen. */
async function pullUntil(
  store: RedisMailboxStore,
  want: readonly string[],
  timeoutMs: number,
): Promise<string[]> {
  const seen: string[] = [];
  await eventually(
    async () => {
      const batch = await store.pullDispatchSignals(32, 300);
      for (const entry of batch) {
        seen.push(entry.dispatch_id);
        await entry.receipt.ack();
      }
      return want.every((id) => seen.includes(id));
    },
    timeoutMs,
    `signals for ${want.join(', ')}`,
    50,
  );
  return seen;
}

function recordLive(stream: LiveRunCommandStream): LiveRunCommand[] {
  const seen: LiveRunCommand[] = [];
  void (async () => {
    for await (const entry of stream) {
      seen.push(entry.command);
      await entry.receipt.ack();
    }
  })();
  return seen;
}

describe('nats-server SIGKILL + restart (file storage)', () => {
  it(
    'keeps queued signals, resumes live channels and sweeps dispatches enqueued while it was down',
    { timeout: 60_000 },
    async () => {
      const before = ['pre-1', 'pre-2', 'pre-3', 'pre-4', 'pre-5'];
      const now = Date.now();
      for (const [i, id] of before.entries()) {
        await durable.enqueue(
          queuedDispatch({
            dispatch_id: id,
            thread_id: `pre-thread-${i}`,
            run_id: `run-${id}`,
            created_at: now,
          }),
        );
      }
      raw = await connect({ servers: nats.url, name: 'fault-nats-probe' });
      await eventually(
        async () => (await streamMessages(raw!, nsDurable)) === before.length,
        10_000,
        'five stored signals',
      );
      await raw.close();
      raw = null;

      const target: LiveRunTarget = {
        thread_id: 'live.thread>*',
        run_id: 'live-run',
        dispatch_id: 'live-dispatch',
      };
      const stream = await durable.openLiveChannelFor(target);
      const liveSeen = recordLive(stream);
      expect(await durable.deliverLiveTo(target, 'PendingBoundaryWake')).toBe('Delivered');

      nats.signal('SIGKILL');
      await new Promise<void>((resolve) => {
        if (nats.process.exitCode !== null || nats.process.signalCode !== null) resolve();
        else nats.process.once('exit', () => resolve());
      });

      // NATS is down: enqueue still commits (and answers in bounded time).
      const during = ['down-1', 'down-2', 'down-3', 'down-4', 'down-5'];
      for (const [i, id] of during.entries()) {
        const outcome = await attempt(
          () =>
            swept.enqueue(
              queuedDispatch({
                dispatch_id: id,
                thread_id: `down-thread-${i}`,
                run_id: `run-${id}`,
                created_at: Date.now(),
              }),
            ),
          10_000,
          `enqueue ${id}`,
        );
        if (!outcome.ok)
          throw new Error(`enqueue ${id} while NATS is down failed: ${describeError(outcome.error)}`);
      }
      for (const id of during) expect((await swept.loadDispatch(id))?.status).toBe('Queued');

      await nats.restart();

      // Durable signals survived the restart (nothing republished them: republishAfterMs is an hour).
      raw = await connect({ servers: nats.url, name: 'fault-nats-probe' });
      expect(await streamMessages(raw, nsDurable)).toBe(before.length);
      const pulled = await pullUntil(durable, before, 30_000);
      expect([...new Set(pulled)].sort()).toEqual([...before].sort());

      // The live channel opened before the restart receives again.
      await eventually(
        async () =>
          (await within(durable.deliverLiveTo(target, 'Cancel'), 5000, 'deliverLiveTo')) === 'Delivered',
        30_000,
        'live delivery after reconnect',
        250,
      );
      await eventually(() => liveSeen.includes('Cancel'), 5000, 'the live command to arrive');
      await stream.close();

      // Once the sweeping store's own connection answers a pull (so whatever it buffered while disconnected has
      // been flushed), drop every stored signal: from here on only the sweeper can signal these dispatches.
      await eventually(
        async () => {
          for (const entry of await swept.pullDispatchSignals(32, 100)) await entry.receipt.ack();
          return true;
        },
        30_000,
        'the sweeping store to reconnect',
        250,
      );
      const jsm = await jetstreamManager(raw);
      await jsm.streams.purge(signalStreamName(nsSwept));
      const sweptSignals = await pullUntil(swept, during, 30_000);
      expect(during.every((id) => sweptSignals.includes(id))).toBe(true);
    },
  );
});

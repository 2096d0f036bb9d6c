/**
 * Fault tests on our own nats-server processes (design.md §4): a channel opened before a server restart keeps
 * receiving afterwards (nats.js re-subscribes on reconnect), and failures never leak credentials.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { LiveDeliveryOutcome, LiveRunCommandStream, LiveRunTarget } from '../../src/contract/types.js';
import { NatsLiveChannel, liveSubjectPrefix } from '../../src/live/nats-live.js';
import { spawnNats, type SpawnedServer } from '../support/servers.js';
import { connectTo, eventually, record } from './helpers.js';

const prefix = liveSubjectPrefix(null); // our own server: the upstream default prefix is safe here
const cleanup: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

async function server(opts: Parameters<typeof spawnNats>[0] = {}): Promise<SpawnedServer> {
  const s = await spawnNats(opts);
  cleanup.push(() => s.stop());
  return s;
}

async function connection(
  url: string,
  reconnect: boolean,
  auth: { user?: string; pass?: string } = {},
): Promise<NatsConnection> {
  const nc = await connectTo(url, {
    ...(reconnect
      ? { maxReconnectAttempts: -1, reconnectTimeWait: 100, reconnectJitter: 50 }
      : { reconnect: false }),
    ...auth,
  });
  cleanup.push(() => nc.close());
  return nc;
}

/** Resolves at the connection's next status event of `type` (e.g. `disconnect`, `reconnect`). */
async function waitForStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === type) return;
  }
}

/** Deliver, mapping StorageErrors to their kind so polling loops can tell outcomes apart. */
async function attempt(
  deliver: () => Promise<LiveDeliveryOutcome>,
): Promise<LiveDeliveryOutcome | StorageError['kind']> {
  try {
    return await deliver();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return (err as StorageError).kind;
  }
}

/** Our own server, and a consumer and a producer channel on reconnecting connections to it. */
async function restartableChannels(consumerTimeoutMs?: number): Promise<{
  nats: SpawnedServer;
  consumerNc: NatsConnection;
  consumer: NatsLiveChannel;
  producer: NatsLiveChannel;
}> {
  const nats = await server();
  const consumerNc = await connection(nats.url, true);
  const producerNc = await connection(nats.url, true);
  const consumer = new NatsLiveChannel({
    nc: consumerNc,
    subjectPrefix: prefix,
    ...(consumerTimeoutMs === undefined ? {} : { requestTimeoutMs: consumerTimeoutMs }),
  });
  const producer = new NatsLiveChannel({ nc: producerNc, subjectPrefix: prefix, requestTimeoutMs: 1000 });
  cleanup.push(
    () => consumer.close(),
    () => producer.close(),
  );
  return { nats, consumerNc, consumer, producer };
}

/**
 * `stream` (of `target`) takes a Cancel; then the server restarts and PendingBoundaryWake is delivered until it
 * is Delivered: the stream sees it and never ended, and nothing before it was a false Delivered.
 */
async function expectServedAcrossRestart(
  nats: SpawnedServer,
  producer: NatsLiveChannel,
  target: LiveRunTarget,
  stream: LiveRunCommandStream,
): Promise<void> {
  const rec = record(stream);
  let ended = false;
  void rec.ended.then(() => (ended = true));
  expect(await producer.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
  await rec.waitFor(1);

  await nats.restart();

  const outcomes: string[] = [];
  await eventually(
    async () => {
      const outcome = await attempt(() => producer.deliverLiveTo(target, 'PendingBoundaryWake'));
      outcomes.push(outcome);
      return outcome === 'Delivered';
    },
    20_000,
    100,
  );
  const seen = await rec.waitFor(2);
  expect(seen[0]).toBe('Cancel');
  expect(seen.slice(1).every((c) => c === 'PendingBoundaryWake')).toBe(true);
  expect(ended).toBe(false);
  // Every outcome during the outage was NoSubscriber or Io, never a false Delivered before the last one.
  expect(outcomes.slice(0, -1).every((o) => o === 'NoSubscriber' || o === 'Io')).toBe(true);
}

describe('server restart', () => {
  it('a channel opened before the restart receives again afterwards', async () => {
    const { nats, consumer, producer } = await restartableChannels();
    const target = { thread_id: 'restart-thread', run_id: 'r1', dispatch_id: 'd1' };
    await expectServedAcrossRestart(nats, producer, target, await consumer.openLiveChannelFor(target));
  });

  it('a thread subscription opened before the restart serves its runs again afterwards', async () => {
    const { nats, consumer, producer } = await restartableChannels();
    const runs = await consumer.openThreadRuns('restart-runs', () => true);
    const first = { thread_id: 'restart-runs', run_id: 'r1', dispatch_id: 'd1' };
    await expectServedAcrossRestart(nats, producer, first, runs.openRun(first)!);
    // The next run of the thread is served from the same (re-established) subscription.
    const second = { thread_id: 'restart-runs', run_id: 'r2', dispatch_id: 'd2' };
    const next = runs.openRun(second);
    expect(next).not.toBeNull();
    const rec2 = record(next!);
    expect(await producer.deliverLiveTo(second, 'Cancel')).toBe('Delivered');
    await rec2.waitFor(1);
  });

  it('a channel opened while the server is down subscribes once it is back', async () => {
    const { nats, consumerNc, consumer, producer } = await restartableChannels(500);
    const disconnected = waitForStatus(consumerNc, 'disconnect');
    nats.signal('SIGKILL');
    await disconnected;
    const stream = await consumer.openLiveChannel('opened-while-down');
    const rec = record(stream);
    await nats.restart();
    await eventually(
      async () => (await attempt(() => producer.deliverLive('opened-while-down', 'Cancel'))) === 'Delivered',
      20_000,
      100,
    );
    await rec.waitFor(1);
  });
});

describe('errors', () => {
  it('a closed connection gives Io without credentials in the message', async () => {
    const nats = await server({ user: 'live-user', pass: 's3cr3t-pass' });
    const nc = await connection(nats.url, false, { user: 'live-user', pass: 's3cr3t-pass' });
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    cleanup.push(() => ch.close());
    expect(await ch.deliverLive('auth-thread', 'Cancel')).toBe('NoSubscriber');
    await nats.stop();
    await eventually(() => nc.isClosed(), 10_000);
    for (const op of [
      () => ch.deliverLive('auth-thread', 'Cancel'),
      () => ch.openLiveChannel('auth-thread'),
    ]) {
      const err = await op().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).kind).toBe('Io');
      expect((err as StorageError).message).not.toContain('s3cr3t');
    }
  });

  it('wrong credentials never reach the channel; a good connection works on the same server', async () => {
    const nats = await server({ user: 'live-user', pass: 's3cr3t-pass' });
    await expect(
      connectTo(nats.url, { reconnect: false, user: 'live-user', pass: 'wrong' }),
    ).rejects.toThrow();
    const nc = await connection(nats.url, false, { user: 'live-user', pass: 's3cr3t-pass' });
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    cleanup.push(() => ch.close());
    const rec = record(await ch.openLiveChannel('auth-ok'));
    expect(await ch.deliverLive('auth-ok', 'Cancel')).toBe('Delivered');
    await rec.waitFor(1);
  });
});

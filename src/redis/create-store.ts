/**
 * `createMailboxStore(options)`: the distributed store, shared by every node of a deployment. Redis holds the
 * records; signals go through JetStream (default with NATS), Redis Streams (default without) or nowhere; live
 * steering needs NATS. The NATS and signal modules are loaded only when the configuration uses them. A create
 * that fails closes everything it opened before rejecting, so a failed start never keeps the process alive.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Redis } from 'ioredis';
import { StorageError } from '../contract/errors.js';
import type { LiveChannel } from '../live/channel.js';
import { closeRedis, collectSecrets, deadline, openNats, openOwnedRedis } from './connections.js';
import { redisIoError, toIoError } from './errors.js';
import { redisKeys } from './keys.js';
import type { RedisKeys } from './keys.js';
import { NoLiveChannel } from './no-live.js';
import { resolveOptions } from './options.js';
import type { CreateMailboxStoreOptions, ResolvedOptions } from './options.js';
import { ScriptRunner } from './scripts.js';
import { RedisMailboxStore } from './store.js';
import type { StoreSignalTransport } from './store.js';

async function openTransport(
  o: ResolvedOptions,
  keys: RedisKeys,
  redis: Redis,
  nc: NatsConnection | null,
): Promise<StoreSignalTransport | null> {
  if (o.signals === 'none') return null;
  if (o.signals === 'jetstream') {
    if (nc === null) throw StorageError.validation("options.signals: 'jetstream' needs options.nats");
    const { createJetStreamSignals } = await import('../signals/jetstream.js');
    return createJetStreamSignals({ nc, namespace: o.namespace, logger: o.logger });
  }
  // The transport runs its scripts and acks on the store's connection and opens its own blocking
  // duplicates for XREADGROUP, so blocking reads never hold up store commands.
  const { createRedisStreamsSignals } = await import('../signals/redis-streams.js');
  const consumerName = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  return createRedisStreamsSignals({ redis, keys, consumerName, logger: o.logger });
}

async function openLive(o: ResolvedOptions, nc: NatsConnection | null): Promise<LiveChannel> {
  if (nc === null) return new NoLiveChannel();
  const { NatsLiveChannel, liveSubjectPrefix } = await import('../live/nats-live.js');
  return new NatsLiveChannel({
    nc,
    subjectPrefix: liveSubjectPrefix(o.namespace, o.liveSubjectPrefix),
    requestTimeoutMs: o.liveRequestTimeoutMs,
    codec: o.liveCodec,
    logger: o.logger,
  });
}

export async function createMailboxStore(options: CreateMailboxStoreOptions): Promise<RedisMailboxStore> {
  const o = resolveOptions(options);
  const keys = redisKeys(o.namespace);
  const secrets = collectSecrets(o);
  /** Owned resources, released in reverse order on failure here or on `close()`. */
  const release: (() => Promise<void>)[] = [];
  let transport: StoreSignalTransport | null = null;
  let live: LiveChannel | null = null;
  try {
    let redis: Redis;
    if (typeof o.redis === 'string') {
      const owned = await openOwnedRedis(o.redis, o, secrets, 'main');
      release.push(() => closeRedis(owned, o.commandTimeoutMs));
      redis = owned;
    } else {
      redis = o.redis;
    }
    const scripts = new ScriptRunner(redis);
    try {
      await deadline(scripts.preload(), o.commandTimeoutMs, 'redis script load');
    } catch (err) {
      throw redisIoError(redis, err, secrets);
    }

    let nc: NatsConnection | null = null;
    if (typeof o.nats === 'string') {
      const owned = await openNats(o.nats, o, secrets);
      release.push(async () => {
        await deadline(owned.close(), o.commandTimeoutMs, 'nats close').catch(() => undefined);
      });
      nc = owned;
    } else if (o.nats !== null) {
      nc = o.nats;
    }

    transport = await openTransport(o, keys, redis, nc);
    live = await openLive(o, nc);
    const store = new RedisMailboxStore({
      redis,
      scripts,
      keys,
      signals: o.signals,
      transport,
      live,
      commandTimeoutMs: o.commandTimeoutMs,
      republishAfterMs: o.republishAfterMs,
      secrets,
      logger: o.logger,
      release,
      nats: nc,
    });
    if (transport !== null) {
      const { SignalSweeper } = await import('../signals/sweeper.js');
      const sweeper = new SignalSweeper({
        sweep: (now: number, limit: number) => store.sweepDueSignals(now, o.republishAfterMs, limit),
        transport,
        intervalMs: o.sweepIntervalMs,
        logger: o.logger,
      });
      store.attachSweeper(sweeper);
      sweeper.start();
    }
    return store;
  } catch (err) {
    await live?.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    for (const fn of [...release].reverse()) await fn().catch(() => undefined);
    throw toIoError('mailbox store', err, secrets);
  }
}

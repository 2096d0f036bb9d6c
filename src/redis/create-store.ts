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
import type { SignalRef } from '../signals/transport.js';
import { clusterReady, isCluster, type RedisClient } from './cluster.js';
import {
  closeCluster,
  closeRedis,
  collectSecrets,
  deadline,
  openNats,
  openOwnedCluster,
  openOwnedRedis,
} from './connections.js';
import { redisIoError, toIoError } from './errors.js';
import { partitionKeys, redisKeys } from './keys.js';
import type { RedisKeys } from './keys.js';
import { NoLiveChannel } from './no-live.js';
import { isClusterSeeds, resolveOptions } from './options.js';
import type { CreateMailboxStoreOptions, ResolvedOptions } from './options.js';
import { PartitionedRedisMailboxStore } from './partitioned-store.js';
import { ScriptRunner } from './scripts.js';
import { RedisMailboxStore } from './store.js';
import type { StoreSignalTransport } from './store.js';

async function openTransport(
  o: ResolvedOptions,
  keys: readonly RedisKeys[],
  redis: RedisClient,
  nc: NatsConnection | null,
): Promise<StoreSignalTransport | null> {
  if (o.signals === 'none') return null;
  if (o.signals === 'jetstream') {
    if (nc === null) throw StorageError.validation("options.signals: 'jetstream' needs options.nats");
    const { createJetStreamSignals } = await import('../signals/jetstream.js');
    return createJetStreamSignals({
      nc,
      namespace: o.namespace,
      logger: o.logger,
      replicas: o.jetstreamReplicas,
    });
  }
  // The transport runs its scripts and acks on the store's connection and opens its own blocking
  // duplicates for XREADGROUP, so blocking reads never hold up store commands.
  const consumerName = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  if (keys.length > 1) {
    const { createPartitionedStreamsSignals } = await import('../signals/partitioned-streams.js');
    return createPartitionedStreamsSignals({ redis, partitionKeys: keys, consumerName, logger: o.logger });
  }
  const { createRedisStreamsSignals } = await import('../signals/redis-streams.js');
  return createRedisStreamsSignals({ redis, keys: keys[0] as RedisKeys, consumerName, logger: o.logger });
}

/** The per-partition stores publish JetStream wake-ups through the shared transport but never close it. */
function publishOnly(transport: StoreSignalTransport | null): StoreSignalTransport | null {
  if (transport === null || transport.kind !== 'jetstream') return null;
  return {
    kind: transport.kind,
    publish: (refs: readonly SignalRef[]) => transport.publish(refs),
    pull: () => Promise.reject(StorageError.io('signals are pulled through the partitioned store')),
    close: () => Promise.resolve(),
  };
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

/**
 * Open the distributed store. With the defaults (one partition, a single Redis server, `async` durability)
 * this is the single-slot `RedisMailboxStore`; a Redis Cluster, `partitions > 1` or `durability:
 * 'replicated'` give a `PartitionedRedisMailboxStore` (a subclass, same API).
 */
export async function createMailboxStore(options: CreateMailboxStoreOptions): Promise<RedisMailboxStore> {
  const o = resolveOptions(options);
  const keys = redisKeys(o.namespace);
  const keysOfPartitions = Array.from({ length: o.partitions }, (_, p) =>
    partitionKeys(o.namespace, p, o.partitions),
  );
  const secrets = collectSecrets(o);
  /** Owned resources, released in reverse order on failure here or on `close()`. */
  const release: (() => Promise<void>)[] = [];
  let transport: StoreSignalTransport | null = null;
  let live: LiveChannel | null = null;
  try {
    let redis: RedisClient;
    if (typeof o.redis === 'string') {
      const owned = await openOwnedRedis(o.redis, o, secrets, 'main');
      release.push(() => closeRedis(owned, o.commandTimeoutMs));
      redis = owned;
    } else if (isClusterSeeds(o.redis)) {
      const owned = await openOwnedCluster(o.redis, o, secrets);
      release.push(() => closeCluster(owned, o.commandTimeoutMs));
      redis = owned;
    } else {
      redis = o.redis;
      if (isCluster(redis)) {
        const given = redis;
        await deadline(clusterReady(given), o.commandTimeoutMs, 'redis cluster ready').catch(
          (err: unknown) => {
            throw toIoError('redis cluster', err, secrets);
          },
        );
      }
    }
    const scripts = new ScriptRunner(redis);
    try {
      await deadline(scripts.preload(), o.commandTimeoutMs, 'redis script load');
    } catch (err) {
      throw isCluster(redis) ? toIoError('redis cluster', err, secrets) : redisIoError(redis, err, secrets);
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

    transport = await openTransport(o, keysOfPartitions, redis, nc);
    live = await openLive(o, nc);
    const common = {
      scripts,
      signals: o.signals,
      commandTimeoutMs: o.commandTimeoutMs,
      republishAfterMs: o.republishAfterMs,
      quietClaimedThreads: o.quietClaimedThreads,
      secrets,
      logger: o.logger,
    };
    let store: RedisMailboxStore;
    if (o.partitions === 1 && !isCluster(redis) && o.durability === 'async') {
      // The default: one partition on one server, exactly the single-slot store.
      store = new RedisMailboxStore({ ...common, redis, keys, transport, live, release, nats: nc });
    } else {
      // The store commands both client kinds share are all the store sends (see src/redis/cluster.ts).
      const shared = redis as Redis;
      const partitions = keysOfPartitions.map(
        (partition) =>
          new RedisMailboxStore({
            ...common,
            redis: shared,
            keys: partition,
            transport: publishOnly(transport),
            live: new NoLiveChannel(),
            instrument: false,
          }),
      );
      store = new PartitionedRedisMailboxStore({
        ...common,
        redis: shared,
        keys,
        transport,
        live,
        release,
        nats: nc,
        client: redis,
        partitions,
        partitionKeys: keysOfPartitions,
        durability: o.durability,
      });
    }
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

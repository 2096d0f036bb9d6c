/**
 * The shared live conformance suite (test/conformance/live-suite.ts) against NatsLiveChannel on the shared NATS
 * server. The suite only calls the live methods, so the fixture's "store" is the channel's five live methods;
 * every fixture gets its own namespace (subject prefix) and connections.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { MailboxStore } from '../../src/contract/store.js';
import { NatsLiveChannel, liveSubjectPrefix } from '../../src/live/nats-live.js';
import type { LiveCodec } from '../../src/live/wire.js';
import { describeLiveConformance } from '../conformance/live-suite.js';
import type { StoreFixture } from '../conformance/suite.js';
import { natsUrl, testNamespace } from '../support/servers.js';
import { connectTo } from './helpers.js';

const REQUEST_TIMEOUT_MS = 1000;

/**
 * A live-only stand-in for a store. `producer` serves deliveries and `consumer` serves subscriptions; giving
 * them different connections makes every delivery cross "nodes". Only the live methods exist: the suite
 * calls nothing else, and a call to anything else fails loudly as "not a function".
 */
function liveOnlyStore(producer: NatsLiveChannel, consumer: NatsLiveChannel): MailboxStore {
  const live = {
    deliverLive: producer.deliverLive.bind(producer),
    deliverLiveTo: producer.deliverLiveTo.bind(producer),
    openLiveChannel: consumer.openLiveChannel.bind(consumer),
    openLiveChannelFor: consumer.openLiveChannelFor.bind(consumer),
    close: async () => {
      await producer.close();
      await consumer.close();
    },
  };
  return live as unknown as MailboxStore;
}

function makeFixture(codec: LiveCodec, separateConnections: boolean): () => Promise<StoreFixture> {
  return async () => {
    const url = await natsUrl();
    const prefix = liveSubjectPrefix(testNamespace(`live-conf-${codec}`));
    const connections: NatsConnection[] = [await connectTo(url)];
    if (separateConnections) connections.push(await connectTo(url));
    const [producerNc, consumerNc = producerNc] = connections as [NatsConnection, NatsConnection?];
    const options = { subjectPrefix: prefix, requestTimeoutMs: REQUEST_TIMEOUT_MS };
    const producer = new NatsLiveChannel({ ...options, nc: producerNc, codec });
    const consumer = separateConnections ? new NatsLiveChannel({ ...options, nc: consumerNc }) : producer;
    const store = liveOnlyStore(producer, consumer);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await Promise.all(connections.map((nc) => nc.close()));
      },
    };
  };
}

describeLiveConformance('NatsLiveChannel (JSON, one connection)', makeFixture('json', false), {
  ackTimeoutMs: REQUEST_TIMEOUT_MS,
});
describeLiveConformance('NatsLiveChannel (msgpack producer, two connections)', makeFixture('msgpack', true), {
  ackTimeoutMs: REQUEST_TIMEOUT_MS,
});

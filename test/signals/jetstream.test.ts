import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { StorageError } from '../../src/contract/errors.js';
import {
  ackMetadata,
  createJetStreamSignals,
  pubAckSeq,
  strandedConsumerReason,
  signalStreamName,
  signalSubject,
  signalSubjectPrefix,
} from '../../src/signals/jetstream.js';
import type { JetStreamSignals } from '../../src/signals/jetstream.js';
import type { ConsumerInfo, StreamInfo } from '@nats-io/jetstream';
import type { Logger } from '../../src/util/logger.js';
import { natsUrl, spawnNats, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { describeTransportSuite, pullUntil } from './transport-suite.js';
import type { DestroyableTransport, TransportHarness } from './transport-suite.js';

let url = '';
let shared: NatsConnection | null = null;

beforeAll(async () => {
  url = await natsUrl();
  shared = await connect({ servers: url });
});
afterAll(async () => {
  await shared?.close();
});

/** A transport on its own connection, which its close() also closes. */
async function openOwned(
  serverUrl: string,
  namespace: string | null,
  extra: { ackWaitMs?: number } = {},
): Promise<JetStreamSignals> {
  const nc = await connect({ servers: serverUrl, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  let t: JetStreamSignals;
  try {
    t = await createJetStreamSignals({ nc, namespace, ...extra });
  } catch (err) {
    await nc.close();
    throw err;
  }
  return {
    kind: t.kind,
    streamName: t.streamName,
    subjectPrefix: t.subjectPrefix,
    publish: (signals) => t.publish(signals),
    pull: (max, expiresMs) => t.pull(max, expiresMs),
    close: async () => {
      await t.close();
      if (!nc.isClosed()) await nc.close();
    },
    destroy: async () => {
      try {
        await t.destroy();
      } finally {
        if (!nc.isClosed()) await nc.close();
      }
    },
  };
}

const harness: TransportHarness = {
  open: (ns): Promise<DestroyableTransport> => openOwned(url, ns),
  async plantBlank(ns, threadId) {
    const nc = shared as NatsConnection;
    nc.publish(signalSubject(signalSubjectPrefix(ns), threadId).subject, new Uint8Array(0));
    await nc.flush();
  },
};

describeTransportSuite('jetstream', () => harness);

describe('jetstream signals: naming and topology', () => {
  it('names: DISPATCH / dispatch.> without a namespace, AWAKEN_DISPATCH_<ns> / <ns>.dispatch.> with one', () => {
    expect(signalStreamName(null)).toBe('DISPATCH');
    expect(signalSubjectPrefix(null)).toBe('dispatch');
    expect(signalStreamName('acme_1')).toBe('AWAKEN_DISPATCH_acme_1');
    expect(signalSubjectPrefix('acme_1')).toBe('acme_1.dispatch');
    expect(signalSubject('dispatch', 't1')).toEqual({ subject: 'dispatch.h7431' });
    expect(signalSubject('dispatch', '')).toEqual({ subject: 'dispatch.h' });
    const long = signalSubject('dispatch', 'x'.repeat(4096));
    expect(long.subject).toMatch(/^dispatch\.s[0-9a-f]{64}$/);
    expect(long.threadHex).toBe(`h${'78'.repeat(4096)}`);
    for (const bad of ['a.b', 'a b', '', 'x'.repeat(65), 'a>']) {
      expect(() => signalStreamName(bad)).toThrow(StorageError);
    }
  });

  it('parses the delivered count from v1 and v2 ack subjects', () => {
    expect(ackMetadata('$JS.ACK.S.C.3.10.9.1700000000000000000.0')?.delivered).toBe(3);
    expect(ackMetadata('$JS.ACK.dom.acchash.S.C.2.10.9.1700000000000000000.0.rnd')?.delivered).toBe(2);
    expect(ackMetadata('$JS.ACK.S.C')).toBeNull();
    expect(ackMetadata('_INBOX.x')).toBeNull();
  });

  it('parses the stream sequence from ack subjects and PubAcks', () => {
    expect(ackMetadata('$JS.ACK.S.C.3.10.9.1700000000000000000.0')?.streamSeq).toBe(10);
    expect(ackMetadata('$JS.ACK.dom.acchash.S.C.2.11.9.1700000000000000000.0.rnd')?.streamSeq).toBe(11);
    expect(ackMetadata('$JS.ACK.S.C.3.x.9.1700000000000000000.0')).toEqual({ delivered: 3, streamSeq: 0 });
    const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
    expect(pubAckSeq(enc('{"stream":"AWAKEN_DISPATCH_x", "seq":42}'))).toBe(42);
    expect(pubAckSeq(enc('{"stream":"S","domain":"d","seq":7,"duplicate":true}'))).toBe(7);
    expect(pubAckSeq(enc('{"error":{"code":503}}'))).toBe(0);
  });

  it('tells when the consumer cannot see messages of its stream (state lost in an unclean stop)', () => {
    const consumer = (delivered: number, ackFloor: number): ConsumerInfo =>
      ({
        delivered: { consumer_seq: delivered, stream_seq: delivered },
        ack_floor: { consumer_seq: ackFloor, stream_seq: ackFloor },
      }) as ConsumerInfo;
    const stream = (messages: number, first: number, last: number): StreamInfo =>
      ({ state: { messages, first_seq: first, last_seq: last } }) as StreamInfo;
    // Healthy: acked messages are gone, the rest lies above the ack floor.
    expect(strandedConsumerReason(consumer(0, 0), stream(0, 0, 0))).toBeNull();
    expect(strandedConsumerReason(consumer(5, 3), stream(2, 4, 5))).toBeNull();
    expect(strandedConsumerReason(consumer(5, 5), stream(3, 6, 8))).toBeNull();
    // The stream lost its tail: it is behind what the consumer already delivered.
    expect(strandedConsumerReason(consumer(5, 5), stream(0, 0, 3))).toMatch(/behind/);
    // A message at or below the ack floor: never delivered again.
    expect(strandedConsumerReason(consumer(5, 5), stream(1, 5, 5))).toMatch(/ack floor/);
    expect(strandedConsumerReason(consumer(2, 1), stream(3, 1, 3))).toMatch(/ack floor/);
  });

  it('creates a work-queue stream and a durable explicit-ack pull consumer with the documented settings', async () => {
    const ns = testNamespace('sig-topo');
    const t = await openOwned(url, ns);
    try {
      const jsm = await jetstreamManager(shared as NatsConnection);
      const s = await jsm.streams.info(`AWAKEN_DISPATCH_${ns}`);
      expect(s.config.subjects).toEqual([`${ns}.dispatch.>`]);
      expect(s.config.retention).toBe(RetentionPolicy.Workqueue);
      expect(s.config.storage).toBe(StorageType.File);
      expect(s.config.duplicate_window).toBe(120_000_000_000);
      const c = await jsm.consumers.info(`AWAKEN_DISPATCH_${ns}`, 'dispatch-worker');
      expect(c.config.durable_name).toBe('dispatch-worker');
      expect(c.config.deliver_subject).toBeUndefined();
      expect(c.config.ack_policy).toBe(AckPolicy.Explicit);
      expect(c.config.filter_subject).toBe(`${ns}.dispatch.>`);
      expect(c.config.ack_wait).toBe(30_000_000_000);
      expect(c.config.max_deliver).toBe(-1);
    } finally {
      await t.destroy();
    }
  });

  it('publishes upstream-format signals (subject dispatch.<hex thread>, raw id payload) and reads them', async () => {
    const ns = testNamespace('sig-wire');
    const t = await openOwned(url, ns);
    const nc = shared as NatsConnection;
    try {
      const seen: [string, string][] = [];
      const sub = nc.subscribe(`${ns}.dispatch.>`, {
        callback: (_e, m) => void seen.push([m.subject, m.string()]),
      });
      await nc.flush();
      await t.publish([{ thread_id: 't1', dispatch_id: 'd1' }]);
      // A foreign (e.g. Rust) node's publish: plain subject and payload, no headers.
      nc.publish(`${ns}.dispatch.h7432`, 'd2');
      await nc.flush();
      const got = new Map<string, string>();
      const deadline = Date.now() + 5000;
      while (got.size < 2 && Date.now() < deadline) {
        for (const s of await t.pull(10, 500)) {
          got.set(s.dispatch_id, s.thread_id);
          await s.receipt.ack();
        }
      }
      // The pulls arrive on the transport's connection; the copies for `sub` on this one may still be unread.
      // A round trip here comes back after them: the server wrote them before it saw the PING.
      await nc.flush();
      sub.unsubscribe();
      expect(seen).toContainEqual([`${ns}.dispatch.h7431`, 'd1']);
      expect(got).toEqual(
        new Map([
          ['d1', 't1'],
          ['d2', 't2'],
        ]),
      );
    } finally {
      await t.destroy();
    }
  });

  it('verifies an existing stream: wrong retention fails with Io; a different ack_wait is updated', async () => {
    const jsm = await jetstreamManager(shared as NatsConnection);
    const bad = testNamespace('sig-bad');
    await jsm.streams.add({ name: `AWAKEN_DISPATCH_${bad}`, subjects: [`${bad}.dispatch.>`] });
    try {
      const err = await openOwned(url, bad).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).kind).toBe('Io');
    } finally {
      await jsm.streams.delete(`AWAKEN_DISPATCH_${bad}`);
    }
    const ns = testNamespace('sig-upd');
    const first = await openOwned(url, ns);
    await first.close();
    const second = await openOwned(url, ns, { ackWaitMs: 5000 });
    try {
      const c = await jsm.consumers.info(`AWAKEN_DISPATCH_${ns}`, 'dispatch-worker');
      expect(c.config.ack_wait).toBe(5_000_000_000);
    } finally {
      await second.destroy();
    }
  });

  it('ids with lone surrogates route exactly (WTF-8 subject segment and payload)', async () => {
    const ns = testNamespace('sig-wtf8');
    const t = await openOwned(url, ns);
    try {
      await t.publish([{ thread_id: 'a\uD800b', dispatch_id: 'x\uDC00' }]);
      const got = await pullUntil(t, (s) => s.dispatch_id === 'x\uDC00', 3000);
      expect(got?.signal.thread_id).toBe('a\uD800b');
      await got?.signal.receipt.ack();
    } finally {
      await t.destroy();
    }
  });

  it('adopts a stream and consumer created the upstream way (server defaults) and raises max_ack_pending', async () => {
    const jsm = await jetstreamManager(shared as NatsConnection);
    const ns = testNamespace('sig-adopt');
    const stream = `AWAKEN_DISPATCH_${ns}`;
    await jsm.streams.add({
      name: stream,
      subjects: [`${ns}.dispatch.>`],
      retention: RetentionPolicy.Workqueue,
      duplicate_window: 120_000_000_000,
    });
    await jsm.consumers.add(stream, {
      durable_name: 'dispatch-worker',
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${ns}.dispatch.>`,
    });
    (shared as NatsConnection).publish(`${ns}.dispatch.h7431`, 'd-before');
    const t = await openOwned(url, ns);
    try {
      const c = await jsm.consumers.info(stream, 'dispatch-worker');
      expect(c.config.max_ack_pending).toBe(10_000);
      expect(c.config.ack_wait).toBe(30_000_000_000);
      const got = await pullUntil(t, (s) => s.dispatch_id === 'd-before', 3000);
      expect(got?.signal.thread_id).toBe('t1');
      await got?.signal.receipt.ack();
    } finally {
      await t.destroy();
    }
  });

  it('recreates a stream deleted behind its back (publish answers 503), and signals flow again', async () => {
    const ns = testNamespace('sig-gone');
    const t = await openOwned(url, ns);
    const jsm = await jetstreamManager(shared as NatsConnection);
    try {
      await jsm.streams.delete(`AWAKEN_DISPATCH_${ns}`);
      await t.publish([{ thread_id: 't', dispatch_id: 'lost' }]);
      // The 503 PubAck triggers a background re-create; later publishes land.
      let got: Awaited<ReturnType<typeof pullUntil>> = null;
      const deadline = Date.now() + 10_000;
      while (got === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        await t.publish([{ thread_id: 't', dispatch_id: 'after' }]);
        got = await pullUntil(t, (s) => s.dispatch_id === 'after', 500).catch(() => null);
      }
      expect(got, 'signals flow after the stream was recreated').not.toBeNull();
    } finally {
      await t.destroy();
    }
  });

  it('destroy() refuses without a namespace (checked on a private server)', async () => {
    const server = await spawnNats();
    try {
      const t = await openOwned(server.url, null);
      const err = await t.destroy().then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as StorageError).kind).toBe('Validation');
      const nc = await connect({ servers: server.url });
      const own = await jetstreamManager(nc);
      const info = await own.streams.info('DISPATCH');
      expect(info.config.subjects).toEqual(['dispatch.>']);
      expect((await own.consumers.info('DISPATCH', 'dispatch-worker')).config.filter_subject).toBe(
        'dispatch.>',
      );
      await nc.close();
      await t.close();
    } finally {
      await server.stop();
    }
  });
});

describe('jetstream signals: nats-server restart (own server, file storage)', () => {
  let server: SpawnedServer | null = null;
  beforeAll(async () => {
    server = await spawnNats();
  });
  afterAll(async () => {
    await server?.stop();
  });

  /**
   * Publish two signals, pull one without acking it, publish a third, restart the server, and collect what
   * arrives afterwards (first delivered count per dispatch id).
   */
  async function acrossRestart(signal: 'SIGKILL' | 'SIGTERM', logger?: Logger): Promise<Map<string, number>> {
    const s = server as SpawnedServer;
    const ns = testNamespace('sig-restart');
    const nc = await connect({ servers: s.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    const t = await createJetStreamSignals({ nc, namespace: ns, ackWaitMs: 1500, logger });
    try {
      await t.publish([
        { thread_id: 't-a', dispatch_id: 'never-pulled' },
        { thread_id: 't-b', dispatch_id: 'pulled-unacked' },
      ]);
      const held = await pullUntil(
        t,
        (x) => x.dispatch_id === 'pulled-unacked',
        5000,
        () => undefined,
      );
      expect(held).not.toBeNull();
      // `never-pulled` may have been acked by pullUntil as "other"; publish another after the pull.
      await t.publish([{ thread_id: 't-a', dispatch_id: 'never-pulled-2' }]);
      await new Promise((r) => setTimeout(r, 200));
      await s.restart({ signal });
      const got = new Map<string, number>();
      const deadline = Date.now() + 15_000;
      while (!(got.has('never-pulled-2') && got.has('pulled-unacked')) && Date.now() < deadline) {
        const batch = await t.pull(10, 500).catch(async () => {
          await new Promise((r) => setTimeout(r, 200));
          return [];
        });
        for (const x of batch) {
          if (!got.has(x.dispatch_id)) got.set(x.dispatch_id, x.receipt.redeliveryAttempts() ?? 0);
          await x.receipt.ack();
        }
      }
      return got;
    } finally {
      await t.destroy().catch(() => undefined);
      await nc.close().catch(() => undefined);
    }
  }

  // Delivery counts are not asserted: nats-server 2.9.10 does not always persist the consumer's delivered
  // state before exiting, even on SIGTERM (seen once in ~15 runs under load: `pulled-unacked` came back as
  // a first delivery), and after a crash the transport may recreate a consumer that lags its stream.
  for (const [how, signal] of [
    ['a clean restart (SIGTERM)', 'SIGTERM'],
    ['a crash and restart (SIGKILL)', 'SIGKILL'],
  ] as const) {
    it(`published and unacked signals are still delivered after ${how}`, async () => {
      const warnings: string[] = [];
      const got = await acrossRestart(signal, {
        warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields)}`),
      });
      expect(got.get('never-pulled-2'), warnings.join('; ')).toBeGreaterThanOrEqual(1);
      expect(got.get('pulled-unacked'), warnings.join('; ')).toBeGreaterThanOrEqual(1);
    });
  }

  /**
   * What an unclean stop can leave behind, made deterministic: the stream's message blocks are gone while
   * the consumer's state remembers deliveries and acks. New signals then reuse sequences the consumer has
   * already acked and, without a repair, never reach a puller (only the sweeper's republish after 30 s).
   */
  async function loseStreamTail(s: SpawnedServer, ns: string): Promise<void> {
    await s.stop({ keepDir: true });
    const msgs = join(s.dir, 'js', 'jetstream', '$G', 'streams', signalStreamName(ns), 'msgs');
    expect(existsSync(msgs), msgs).toBe(true);
    rmSync(msgs, { recursive: true, force: true });
    await s.restart();
  }

  async function pullIds(t: JetStreamSignals, want: number, withinMs: number): Promise<string[]> {
    const seen = new Set<string>();
    const deadline = Date.now() + withinMs;
    while (seen.size < want && Date.now() < deadline) {
      const batch = await t.pull(10, 300).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return [];
      });
      for (const x of batch) {
        seen.add(x.dispatch_id);
        await x.receipt.ack();
      }
    }
    return [...seen].sort();
  }

  for (const when of ['after a reconnect', 'at connect'] as const) {
    it(`a consumer left ahead of a stream that lost its tail is recreated ${when}; new signals arrive`, async () => {
      const s = server as SpawnedServer;
      const ns = testNamespace('sig-tail');
      const warnings: string[] = [];
      const logger: Logger = { warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields)}`) };
      const open = async (): Promise<{ nc: NatsConnection; t: JetStreamSignals }> => {
        const nc = await connect({ servers: s.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
        return { nc, t: await createJetStreamSignals({ nc, namespace: ns, logger }) };
      };
      let { nc, t } = await open();
      try {
        await t.publish([
          { thread_id: 't', dispatch_id: 'old-1' },
          { thread_id: 't', dispatch_id: 'old-2' },
        ]);
        expect(await pullIds(t, 2, 5000)).toEqual(['old-1', 'old-2']);
        if (when === 'at connect') {
          await t.close();
          await nc.close();
        }
        await loseStreamTail(s, ns);
        if (when === 'at connect') ({ nc, t } = await open());
        // Sequences 1 and 2 again: already acked as far as the old consumer state goes.
        await t.publish([
          { thread_id: 't', dispatch_id: 'new-1' },
          { thread_id: 't', dispatch_id: 'new-2' },
        ]);
        expect(await pullIds(t, 2, 10_000), warnings.join('; ')).toEqual(['new-1', 'new-2']);
        expect(warnings.join('; ')).toMatch(/consumer lags its stream/);
      } finally {
        await t.destroy().catch(() => undefined);
        await nc.close().catch(() => undefined);
      }
    });
  }
});

/**
 * Fault 6 (wire half) — malformed messages injected with plain clients, bypassing the store's encoders.
 *
 * - Live subjects (core NATS): bad JSON, bad msgpack under the msgpack header, unknown variants, bad UTF-8,
 *   unknown content types. The consumer drops them without replying (so a producer sees NoSubscriber, i.e. a
 *   request timeout), its stream stays open, and valid commands sent afterwards are delivered.
 * - JetStream signal subjects: empty / garbage payloads, non-hex subject tokens, ids of missing or terminal
 *   dispatches. Pulls skip and ack them (the work queue ends empty), and a valid signal after them comes through.
 * - The Redis signal stream: entries with missing / empty / binary fields, ids of missing or terminal dispatches:
 *   same outcome (nothing left pending, nothing returned but the valid one).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { LiveRunCommand, LiveRunCommandStream, LiveRunTarget } from '../../src/contract/types.js';
import { liveSubjectPrefix, targetLiveSubject, threadLiveSubject } from '../../src/live/subjects.js';
import { createMailboxStore, redisKeys } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import {
  SIGNAL_CONSUMER_NAME,
  signalStreamName,
  signalSubject,
  signalSubjectPrefix,
} from '../../src/signals/jetstream.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import { Servers, disposeStores, eventually } from './support.js';

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
let js: RedisMailboxStore;
let rs: RedisMailboxStore;
let nc: NatsConnection;
let raw: Redis;
const nsJs = testNamespace('fault-wire-js');
const nsRs = testNamespace('fault-wire-rs');

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  // Long republish delay: the only signals in the work queue are the ones this test puts there.
  js = await createMailboxStore({
    redis: redis.url,
    nats: nats.url,
    namespace: nsJs,
    republishAfterMs: 3_600_000,
  });
  rs = await createMailboxStore({
    redis: redis.url,
    namespace: nsRs,
    signals: 'redis-streams',
    republishAfterMs: 3_600_000,
  });
  nc = await connect({ servers: nats.url, name: 'fault-wire-raw' });
  raw = new Redis(redis.url);
});

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  raw?.disconnect();
  await disposeStores([js, rs].filter((s) => s !== undefined));
  await servers.stopAll();
});

const packr = new Packr({ useRecords: false });
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const msgpack = (v: unknown): Uint8Array => new Uint8Array(packr.pack(v));

function nested(depth: number): unknown {
  let v: unknown = 'x';
  for (let i = 0; i < depth; i++) v = [v];
  return { Messages: v };
}

interface Junk {
  what: string;
  data: Uint8Array;
  contentType?: string;
}

const LIVE_JUNK: Junk[] = [
  { what: 'empty payload', data: new Uint8Array() },
  { what: 'truncated JSON', data: utf8('{"Messages":[') },
  { what: 'not JSON', data: utf8('Cancel please') },
  { what: 'invalid UTF-8', data: new Uint8Array([0xff, 0xfe, 0x22]) },
  { what: 'unknown unit variant', data: utf8('"Bogus"') },
  { what: 'unknown tagged variant', data: utf8('{"Bogus":[]}') },
  { what: 'two tags', data: utf8('{"Messages":[],"Decision":[]}') },
  { what: 'Messages not an array', data: utf8('{"Messages":"hi"}') },
  { what: 'bad message role', data: utf8('{"Messages":[{"role":"alien","content":[]}]}') },
  { what: 'bad Decision shape', data: utf8('{"Decision":[[1,2,3]]}') },
  { what: 'JSON number', data: utf8('42') },
  { what: 'JSON null', data: utf8('null') },
  { what: 'deeply nested JSON', data: utf8(`{"Messages":${'['.repeat(5000)}${']'.repeat(5000)}}`) },
  { what: 'big junk (256 KiB)', data: utf8('x'.repeat(256 * 1024)) },
  { what: 'msgpack: reserved byte 0xc1', data: new Uint8Array([0xc1]), contentType: 'application/msgpack' },
  { what: 'msgpack: truncated map', data: new Uint8Array([0x81, 0xa8]), contentType: 'application/msgpack' },
  {
    what: 'msgpack: truncated str32',
    data: new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41]),
    contentType: 'application/msgpack',
  },
  { what: 'msgpack: unknown variant', data: msgpack({ Bogus: 1 }), contentType: 'application/msgpack' },
  {
    what: 'msgpack: timestamp extension',
    data: msgpack({ Messages: [new Date(0)] }),
    contentType: 'application/msgpack',
  },
  { what: 'msgpack: nested too deep', data: msgpack(nested(500)), contentType: 'application/msgpack' },
  {
    what: 'msgpack: JSON bytes under the msgpack header',
    data: utf8('"Cancel"'),
    contentType: 'application/msgpack',
  },
  { what: 'unknown content type', data: utf8('~~junk~~'), contentType: 'text/x-bogus' },
];

function record(stream: LiveRunCommandStream): { seen: LiveRunCommand[]; ended: Promise<void> } {
  const seen: LiveRunCommand[] = [];
  const ended = (async () => {
    for await (const entry of stream) {
      seen.push(entry.command);
      await entry.receipt.ack();
    }
  })();
  return { seen, ended };
}

/** A raw request: 'replied' (someone acked) or 'no-reply' (timeout / no responders). */
async function rawRequest(subject: string, junk: Junk): Promise<'replied' | 'no-reply'> {
  let h: MsgHdrs | undefined;
  if (junk.contentType) {
    h = headers();
    h.set('Content-Type', junk.contentType);
  }
  try {
    await nc.request(subject, junk.data, { timeout: 600, ...(h ? { headers: h } : {}) });
    return 'replied';
  } catch {
    return 'no-reply';
  }
}

describe('malformed live payloads', () => {
  it(
    'are dropped unanswered; the channel survives and valid commands still arrive',
    { timeout: 60_000 },
    async () => {
      const target: LiveRunTarget = { thread_id: 'wire.thread>*', run_id: 'wire-run', dispatch_id: 'wire-d' };
      const prefix = liveSubjectPrefix(nsJs);
      const targeted = record(await js.openLiveChannelFor(target));
      const threadStream = await js.openLiveChannel('wire-thread');
      const threaded = record(threadStream);
      const subjects = [targetLiveSubject(prefix, target), threadLiveSubject(prefix, 'wire-thread')];

      expect(await js.deliverLiveTo(target, 'PendingBoundaryWake')).toBe('Delivered');
      const outcomes = await Promise.all(
        subjects.flatMap((subject) =>
          LIVE_JUNK.map(async (junk) => [junk.what, await rawRequest(subject, junk)] as const),
        ),
      );
      expect(outcomes.filter(([, o]) => o !== 'no-reply')).toEqual([]);

      // Still subscribed, still decoding: valid commands (JSON and msgpack) go through.
      expect(await js.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
      expect(
        await js.deliverLive('wire-thread', {
          Messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
        }),
      ).toBe('Delivered');
      expect(
        await rawRequest(subjects[0]!, {
          what: 'valid msgpack',
          data: msgpack('PendingBoundaryWake'),
          contentType: 'application/msgpack',
        }),
      ).toBe('replied');
      await eventually(
        () => targeted.seen.length === 3 && threaded.seen.length === 1,
        5000,
        'the valid commands',
      );
      expect(targeted.seen).toEqual(['PendingBoundaryWake', 'Cancel', 'PendingBoundaryWake']);
      expect(threaded.seen).toEqual([
        { Messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] },
      ]);
      await threadStream.close();
    },
  );
});

async function pullAll(store: RedisMailboxStore, until: string, timeoutMs: number): Promise<string[]> {
  const returned: string[] = [];
  await eventually(
    async () => {
      for (const entry of await store.pullDispatchSignals(64, 200)) {
        returned.push(entry.dispatch_id);
        await entry.receipt.ack();
      }
      return returned.includes(until);
    },
    timeoutMs,
    `the signal of ${until}`,
    20,
  );
  return returned;
}

/** A dispatch that exists but is terminal (Acked). */
async function terminalDispatch(store: RedisMailboxStore, id: string): Promise<void> {
  await store.enqueue(queuedDispatch({ dispatch_id: id, thread_id: `${id}-t`, run_id: 'r', created_at: 1 }));
  const [claimed] = await store.claim(`${id}-t`, 'c', 10_000, Date.now(), 1);
  await store.ack(id, claimed!.claim_token!, Date.now());
}

describe('malformed JetStream signals', () => {
  it('are acked and skipped; a valid signal after them is returned', { timeout: 60_000 }, async () => {
    await terminalDispatch(js, 'js-terminal');
    // Drain the enqueue's own signal of the terminal dispatch (it is skipped).
    expect(await js.pullDispatchSignals(64, 300)).toEqual([]);

    const client = jetstream(nc);
    const prefix = signalSubjectPrefix(nsJs);
    const goodSubject = signalSubject(prefix, 'js-thread').subject;
    const junk: [string, Uint8Array][] = [
      [goodSubject, new Uint8Array()],
      [goodSubject, new Uint8Array([0xff, 0xfe, 0x00])],
      [goodSubject, utf8('no-such-dispatch')],
      [goodSubject, utf8('   ')],
      [goodSubject, utf8('js-terminal')],
      // Longer than MAX_ID_LENGTH. Regression: this once made the batched load throw, the whole batch was
      // nacked and redelivered at once, forever, and every pull failed: the queue stalled.
      [goodSubject, utf8('x'.repeat(5000))],
      [`${prefix}.not-hex`, utf8('no-such-dispatch')],
      [`${prefix}.h7`, utf8('no-such-dispatch')],
      [`${prefix}.hzz`, utf8('no-such-dispatch')],
      [`${prefix}.a.b.c`, utf8('no-such-dispatch')],
      [`${prefix}.s1234`, utf8('no-such-dispatch')],
    ];
    for (const [subject, data] of junk) await client.publish(subject, data);
    await js.enqueue(
      queuedDispatch({ dispatch_id: 'js-valid', thread_id: 'js-thread', run_id: 'r', created_at: 1 }),
    );

    const returned = await pullAll(js, 'js-valid', 20_000);
    expect(returned).toEqual(['js-valid']);
    // Nothing left to redeliver: the work queue is empty and no delivery is pending.
    const jsm = await jetstreamManager(nc);
    await eventually(
      async () => {
        const stream = await jsm.streams.info(signalStreamName(nsJs));
        const consumer = await jsm.consumers.info(signalStreamName(nsJs), SIGNAL_CONSUMER_NAME);
        return stream.state.messages === 0 && consumer.num_ack_pending === 0 && consumer.num_pending === 0;
      },
      10_000,
      'an empty work queue',
      200,
    );
    // And the consumer keeps working afterwards.
    await js.enqueue(
      queuedDispatch({ dispatch_id: 'js-valid-2', thread_id: 'js-thread-2', run_id: 'r', created_at: 1 }),
    );
    expect(await pullAll(js, 'js-valid-2', 20_000)).toEqual(['js-valid-2']);
  });
});

describe('malformed Redis Streams signals', () => {
  it('are acked and skipped; a valid signal after them is returned', { timeout: 60_000 }, async () => {
    await terminalDispatch(rs, 'rs-terminal');
    expect(await rs.pullDispatchSignals(64, 300)).toEqual([]);

    const keys = redisKeys(nsRs);
    const entries: (string | Buffer)[][] = [
      ['x', 'y'],
      ['t', 'rs-thread'],
      ['d', 'no-such-dispatch'],
      ['t', '', 'd', ''],
      ['t', 'rs-thread', 'd', '   '],
      ['t', 'rs-thread', 'd', Buffer.from([0xff, 0xfe, 0x00])],
      ['t', Buffer.from([0xc3, 0x28]), 'd', 'no-such-dispatch'],
      ['t', 'rs-thread', 'd', 'no-such-dispatch'],
      ['t', 'rs-thread', 'd', 'no-such-dispatch', 'a', 'not-a-number'],
      ['t', 'rs-thread', 'd', 'no-such-dispatch', 'a', '-7'],
      ['t', 'rs-terminal-t', 'd', 'rs-terminal'],
      ['t', 'rs-thread', 'd', 'x'.repeat(5000)],
    ];
    for (const fields of entries) await raw.xadd(keys.signalStream, '*', ...fields);
    await rs.enqueue(
      queuedDispatch({ dispatch_id: 'rs-valid', thread_id: 'rs-thread', run_id: 'r', created_at: 1 }),
    );

    const returned = await pullAll(rs, 'rs-valid', 20_000);
    expect(returned).toEqual(['rs-valid']);
    await eventually(
      async () => {
        const pending = (await raw.xpending(keys.signalStream, keys.signalGroup)) as [number, ...unknown[]];
        const length = await raw.xlen(keys.signalStream);
        const delayed = await raw.zcard(keys.signalDelayed);
        return pending[0] === 0 && length === 0 && delayed === 0;
      },
      10_000,
      'an empty signal stream with nothing pending or delayed',
      200,
    );
    await rs.enqueue(
      queuedDispatch({ dispatch_id: 'rs-valid-2', thread_id: 'rs-thread-2', run_id: 'r', created_at: 1 }),
    );
    expect(await pullAll(rs, 'rs-valid-2', 20_000)).toEqual(['rs-valid-2']);
  });
});

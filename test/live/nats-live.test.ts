/**
 * NatsLiveChannel against the shared NATS server: producer and consumer on separate connections (two "nodes"),
 * upstream's live tests L1–L7 (upstream-nats.md §9.3) plus codecs, malformed payloads, buffering and validation.
 */
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeLiveRunCommand } from '../../src/contract/codec.js';
import { StorageError } from '../../src/contract/errors.js';
import type { LiveRunCommand, LiveRunTarget } from '../../src/contract/types.js';
import { NatsLiveChannel, liveSubjectPrefix, redactCredentials } from '../../src/live/nats-live.js';
import { targetLiveSubject, threadLiveSubject } from '../../src/live/subjects.js';
import { natsUrl, testNamespace } from '../support/servers.js';
import { ALL_VARIANTS } from './fixtures/commands.js';
import {
  connectTo,
  eventually,
  nextWithin,
  openLiveNodes,
  record,
  sleep,
  wire,
  type LiveNodes,
} from './helpers.js';

const ns = testNamespace('live-nats');
const prefix = liveSubjectPrefix(ns);
let url: string;
let nodes: LiveNodes | undefined;
let producerNc: NatsConnection;
let consumerNc: NatsConnection;
let otherNc: NatsConnection;
let producer: NatsLiveChannel;
let consumer: NatsLiveChannel;
let other: NatsLiveChannel;
let counter = 0;
const uid = (label: string): string => `${label}-${++counter}`;

beforeAll(async () => {
  url = await natsUrl();
  nodes = await openLiveNodes(url, prefix);
  ({ producerNc, consumerNc, otherNc, producer, consumer, other } = nodes);
});

afterAll(async () => {
  await nodes?.close();
});

async function expectError(
  p: Promise<unknown>,
  kind: StorageError['kind'],
  detail?: string,
): Promise<StorageError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageError);
  expect((err as StorageError).kind).toBe(kind);
  if (detail !== undefined) expect((err as StorageError).detail).toContain(detail);
  return err as StorageError;
}

const text = (t: string): LiveRunCommand => ({
  Messages: [{ id: 'm', role: 'user', content: [{ type: 'text', text: t }] }],
});

describe('delivery across connections', () => {
  it('L1: thread-level Messages reach the subscriber and the producer sees Delivered', async () => {
    const thread = uid('thread-x');
    const stream = await consumer.openLiveChannel(thread);
    const rec = record(stream);
    expect(await producer.deliverLive(thread, text('cross-node'))).toBe('Delivered');
    const [cmd] = await rec.waitFor(1);
    expect(wire(cmd!)).toBe(wire(text('cross-node')));
    await stream.close();
    await rec.ended;
  });

  for (const codec of ['json', 'msgpack'] as const) {
    it(`L2: every variant arrives in order and intact (producer codec ${codec})`, async () => {
      const nc = await connectTo(url);
      const p = new NatsLiveChannel({ nc, subjectPrefix: prefix, codec });
      const target: LiveRunTarget = { thread_id: uid('t-all'), run_id: 'run-1', dispatch_id: 'd-1' };
      const stream = await consumer.openLiveChannelFor(target);
      const rec = record(stream);
      for (const { command } of ALL_VARIANTS)
        expect(await p.deliverLiveTo(target, command)).toBe('Delivered');
      const seen = await rec.waitFor(ALL_VARIANTS.length);
      expect(seen.map(wire)).toEqual(ALL_VARIANTS.map((v) => wire(v.command)));
      await stream.close();
      await p.close();
      await nc.close();
    });
  }

  it('keeps order for one subscriber under concurrent producers', async () => {
    const thread = uid('order');
    const stream = await consumer.openLiveChannel(thread);
    const rec = record(stream);
    for (let i = 0; i < 50; i++) expect(await producer.deliverLive(thread, text(`n${i}`))).toBe('Delivered');
    const seen = await rec.waitFor(50);
    expect(seen.map(wire)).toEqual(Array.from({ length: 50 }, (_, i) => wire(text(`n${i}`))));
    const outcomes = await Promise.all(
      Array.from({ length: 64 }, (_, i) => producer.deliverLive(thread, text(`c${i}`))),
    );
    expect(outcomes.every((o) => o === 'Delivered')).toBe(true);
    await rec.waitFor(114);
    await stream.close();
  });
});

describe('exact routing', () => {
  it('L3: a stale subscriber of an older run/dispatch of the same thread never sees the current command', async () => {
    const thread = uid('thread-target');
    const stale: LiveRunTarget = { thread_id: thread, run_id: 'run-old', dispatch_id: 'd-old' };
    const staleDispatch: LiveRunTarget = { thread_id: thread, run_id: 'run-new', dispatch_id: 'd-older' };
    const current: LiveRunTarget = { thread_id: thread, run_id: 'run-new', dispatch_id: 'd-new' };
    const staleRec = record(await other.openLiveChannelFor(stale));
    const staleDispatchRec = record(await other.openLiveChannelFor(staleDispatch));
    const threadRec = record(await other.openLiveChannel(thread));
    const currentStream = await consumer.openLiveChannelFor(current);
    const currentRec = record(currentStream);
    expect(await producer.deliverLiveTo(current, 'Cancel')).toBe('Delivered');
    await currentRec.waitFor(1);
    await sleep(200);
    expect(currentRec.seen).toEqual(['Cancel']);
    expect(staleRec.seen).toEqual([]);
    expect(staleDispatchRec.seen).toEqual([]);
    expect(threadRec.seen).toEqual([]);
    await currentStream.close();
    // With the current subscriber gone, the stale ones do not answer for it.
    expect(await producer.deliverLiveTo(current, 'Cancel')).toBe('NoSubscriber');
  });

  it('thread-level and targeted subscribers are isolated both ways', async () => {
    const thread = uid('iso');
    const target: LiveRunTarget = { thread_id: thread, run_id: 'r', dispatch_id: 'd' };
    const threadRec = record(await consumer.openLiveChannel(thread));
    const targetRec = record(await other.openLiveChannelFor(target));
    expect(await producer.deliverLive(thread, 'PendingBoundaryWake')).toBe('Delivered');
    expect(await producer.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
    await sleep(150);
    expect(threadRec.seen).toEqual(['PendingBoundaryWake']);
    expect(targetRec.seen).toEqual(['Cancel']);
    // A target without dispatch_id does not reach a subscriber that registered with one, and vice versa.
    expect(await producer.deliverLiveTo({ thread_id: thread, run_id: 'r' }, 'Cancel')).toBe('NoSubscriber');
    const runOnly = record(
      await other.openLiveChannelFor({ thread_id: thread, run_id: 'r2', dispatch_id: null }),
    );
    expect(
      await producer.deliverLiveTo({ thread_id: thread, run_id: 'r2', dispatch_id: 'd' }, 'Cancel'),
    ).toBe('NoSubscriber');
    expect(await producer.deliverLiveTo({ thread_id: thread, run_id: 'r2' }, 'Cancel')).toBe('Delivered');
    await runOnly.waitFor(1);
  });

  it('L4: different threads are isolated', async () => {
    const a = uid('t-a');
    const b = uid('t-b');
    const recA = record(await consumer.openLiveChannel(a));
    const streamB = await other.openLiveChannel(b);
    expect(await producer.deliverLive(a, 'Cancel')).toBe('Delivered');
    await recA.waitFor(1);
    expect(await nextWithin(streamB, 200)).toBeNull();
    await streamB.close();
  });

  it('ids with `.`, `*`, `>`, spaces and any Unicode route exactly', async () => {
    const ids = ['a.b', 'a.*', 'a.>', '*', '>', 'a b', 'scope:3:abc:t', 'ünï.😀', 'a', 'a.*.>'];
    const recs = await Promise.all(
      ids.map(async (id) => record(await consumer.openLiveChannel(`${ns}:${id}`))),
    );
    for (const [i, id] of ids.entries()) {
      expect(await producer.deliverLive(`${ns}:${id}`, text(`for ${i}`))).toBe('Delivered');
    }
    await sleep(150);
    for (const [i, rec] of recs.entries()) expect(rec.seen.map(wire)).toEqual([wire(text(`for ${i}`))]);
  });

  it('ids of the maximum length route exactly (long segments are digested)', async () => {
    const max = `${ns}${'語'.repeat(4096 - ns.length)}`;
    const target: LiveRunTarget = { thread_id: max, run_id: max, dispatch_id: max };
    const rec = record(await consumer.openLiveChannelFor(target));
    expect(await producer.deliverLiveTo(target, 'Cancel')).toBe('Delivered');
    expect(await producer.deliverLiveTo({ ...target, dispatch_id: `${max.slice(0, -1)}x` }, 'Cancel')).toBe(
      'NoSubscriber',
    );
    const threadRec = record(await consumer.openLiveChannel(max));
    expect(await producer.deliverLive(max, 'PendingBoundaryWake')).toBe('Delivered');
    await rec.waitFor(1);
    await threadRec.waitFor(1);
    expect(rec.seen).toEqual(['Cancel']);
  });

  it('L7: every subscriber of one subject receives the command (fan-out)', async () => {
    const thread = uid('fanout');
    const recA = record(await consumer.openLiveChannel(thread));
    const recB = record(await other.openLiveChannel(thread));
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('Delivered');
    await recA.waitFor(1);
    await recB.waitFor(1);
    expect(recA.seen).toEqual(['Cancel']);
    expect(recB.seen).toEqual(['Cancel']);
  });
});

describe('no subscriber', () => {
  it('L5: nobody subscribed → NoSubscriber at once (no responders), not an error and not the timeout', async () => {
    const nc = await connectTo(url);
    const slow = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 30_000 });
    const started = Date.now();
    expect(await slow.deliverLive(uid('ghost-thread'), 'Cancel')).toBe('NoSubscriber');
    expect(
      await slow.deliverLiveTo({ thread_id: uid('ghost'), run_id: 'r', dispatch_id: 'd' }, text('x')),
    ).toBe('NoSubscriber');
    expect(Date.now() - started).toBeLessThan(15_000);
    await slow.close();
    await nc.close();
  });

  it('a subscriber that drops the receipt → NoSubscriber after the request timeout', async () => {
    const nc = await connectTo(url);
    const p = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 300 });
    const thread = uid('drop');
    const stream = await consumer.openLiveChannel(thread);
    const rec = record(stream, { ack: false });
    const started = Date.now();
    expect(await p.deliverLive(thread, 'Cancel')).toBe('NoSubscriber');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await rec.waitFor(1);
    await stream.close();
    await p.close();
    await nc.close();
  });

  it('L6: closing a stream removes the subscriber and ends its iterator', async () => {
    const target: LiveRunTarget = { thread_id: uid('closing'), run_id: 'r', dispatch_id: 'd' };
    const stream = await consumer.openLiveChannelFor(target);
    const pending = stream[Symbol.asyncIterator]().next();
    await stream.close();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await producer.deliverLiveTo(target, 'Cancel')).toBe('NoSubscriber');
    await stream.close(); // idempotent
  });

  it('a request sent on the same connection after close() resolved, for any close() call, finds no subscriber at once', async () => {
    // One connection for both sides, so the UNSUB and the request are ordered; a request timeout far above
    // the test's own means a late UNSUB would hang the test instead of passing slowly.
    const nc = await connectTo(url);
    const channel = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 120_000 });
    for (const closes of [1, 2, 3]) {
      const target: LiveRunTarget = { thread_id: uid(`same-conn-${closes}`), run_id: 'r', dispatch_id: 'd' };
      const stream = await channel.openLiveChannelFor(target);
      for (let i = 1; i < closes; i++) void stream.close();
      await stream.close();
      expect(await channel.deliverLiveTo(target, 'Cancel')).toBe('NoSubscriber');
    }
    // Several opened in one turn share one flush, and each is registered when its open resolves.
    const targets = Array.from({ length: 20 }, (_, i) => ({
      thread_id: uid('batch'),
      run_id: `r${i}`,
      dispatch_id: null,
    }));
    const streams = await Promise.all(targets.map((t) => channel.openLiveChannelFor(t)));
    const received = streams.map((st) => record(st));
    const outcomes = await Promise.all(targets.map((t) => producer.deliverLiveTo(t, 'Cancel')));
    expect(outcomes).toEqual(targets.map(() => 'Delivered'));
    await Promise.all(received.map((r) => r.waitFor(1)));
    await Promise.all(streams.map((st) => st.close()));
    await channel.close();
    await nc.close();
  }, 20_000);

  it('leaving a for-await loop early unsubscribes', async () => {
    const thread = uid('break');
    const stream = await consumer.openLiveChannel(thread);
    const loop = (async () => {
      for await (const entry of stream) {
        await entry.receipt.ack();
        break;
      }
    })();
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('Delivered');
    await loop;
    await eventually(async () => (await producer.deliverLive(thread, 'Cancel')) === 'NoSubscriber', 3000);
  });
});

describe('receipts', () => {
  it('ack is an empty reply, sent once however often ack() is called', async () => {
    const thread = uid('ack-once');
    const stream = await consumer.openLiveChannel(thread);
    const replies: Msg[] = [];
    const inbox = createInbox();
    const sub = producerNc.subscribe(inbox, {
      callback: (_err, m) => {
        replies.push(m);
      },
    });
    await producerNc.flush();
    producerNc.publish(threadLiveSubject(prefix, thread), encodeLiveRunCommand('Cancel'), { reply: inbox });
    const entry = await nextWithin(stream, 5000);
    expect(entry?.command).toBe('Cancel');
    await entry!.receipt.ack();
    await entry!.receipt.ack();
    await Promise.all([entry!.receipt.ack(), entry!.receipt.ack()]);
    await consumerNc.flush();
    await sleep(150);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.data.length).toBe(0);
    sub.unsubscribe();
    await stream.close();
  });

  it('a plain publish (no reply subject) still yields an entry; ack is a no-op', async () => {
    const thread = uid('no-reply');
    const stream = await consumer.openLiveChannel(thread);
    producerNc.publish(threadLiveSubject(prefix, thread), encodeLiveRunCommand('PendingBoundaryWake'));
    const entry = await nextWithin(stream, 5000);
    expect(entry?.command).toBe('PendingBoundaryWake');
    await entry!.receipt.ack();
    await stream.close();
  });
});

describe('payloads on the wire', () => {
  it('JSON producer: payload is exactly the contract JSON, with no headers', async () => {
    const thread = uid('raw-json');
    const seen: Msg[] = [];
    const sub = otherNc.subscribe(threadLiveSubject(prefix, thread), {
      callback: (_e, m) => {
        seen.push(m);
        m.respond();
      },
    });
    await otherNc.flush();
    for (const { command } of ALL_VARIANTS)
      expect(await producer.deliverLive(thread, command)).toBe('Delivered');
    expect(seen.map((m) => Buffer.from(m.data).toString('utf8'))).toEqual(
      ALL_VARIANTS.map((v) => encodeLiveRunCommand(v.command)),
    );
    expect(seen.every((m) => m.headers === undefined)).toBe(true);
    sub.unsubscribe();
  });

  it('msgpack producer: standard msgpack of the wire object, tagged Content-Type: application/msgpack', async () => {
    const nc = await connectTo(url);
    const p = new NatsLiveChannel({ nc, subjectPrefix: prefix, codec: 'msgpack' });
    const target: LiveRunTarget = { thread_id: uid('raw-mp'), run_id: 'r' };
    const seen: Msg[] = [];
    const sub = otherNc.subscribe(targetLiveSubject(prefix, target), {
      callback: (_e, m) => {
        seen.push(m);
        m.respond();
      },
    });
    await otherNc.flush();
    for (const { command } of ALL_VARIANTS) expect(await p.deliverLiveTo(target, command)).toBe('Delivered');
    expect(seen.map((m) => m.headers?.get('Content-Type'))).toEqual(
      ALL_VARIANTS.map(() => 'application/msgpack'),
    );
    expect(seen.map((m) => unpack(m.data) as unknown)).toEqual(
      ALL_VARIANTS.map((v) => JSON.parse(encodeLiveRunCommand(v.command))),
    );
    sub.unsubscribe();
    await p.close();
    await nc.close();
  });

  it('receivers accept JSON with or without a JSON content type, and msgpack with its header', async () => {
    const thread = uid('accept');
    const rec = record(await consumer.openLiveChannel(thread));
    const subject = threadLiveSubject(prefix, thread);
    const h = natsHeaders();
    h.set('Content-Type', 'application/json; charset=utf-8');
    await producerNc.request(subject, encodeLiveRunCommand('Cancel'), { timeout: 5000, headers: h });
    const mp = natsHeaders();
    mp.set('Content-Type', 'application/msgpack');
    const { pack } = await import('msgpackr');
    await producerNc.request(subject, pack('PendingBoundaryWake'), { timeout: 5000, headers: mp });
    await producerNc.request(subject, encodeLiveRunCommand({ Messages: [] }), { timeout: 5000 });
    expect((await rec.waitFor(3)).map(wire)).toEqual([
      wire('Cancel'),
      wire('PendingBoundaryWake'),
      wire({ Messages: [] }),
    ]);
  });

  it('malformed payloads are dropped, counted and never replied to; valid ones still flow', async () => {
    const nc = await connectTo(url);
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    const thread = uid('malformed');
    const stream = await ch.openLiveChannel(thread);
    const rec = record(stream);
    const subject = threadLiveSubject(prefix, thread);
    const mp = natsHeaders();
    mp.set('Content-Type', 'application/msgpack');
    const odd = natsHeaders();
    odd.set('Content-Type', 'text/plain');
    const bad: [string | Uint8Array, ReturnType<typeof natsHeaders> | undefined][] = [
      ['{"Messages":[', undefined],
      ['"Pause"', undefined],
      ['{"Steer":{}}', undefined],
      [new Uint8Array([0xc1, 0xff]), mp],
      ['"Cancel"', odd],
      ['', undefined],
    ];
    const before = ch.droppedMessages;
    for (const [data, h] of bad) {
      const outcome = await producerNc
        .request(subject, data, { timeout: 300, ...(h ? { headers: h } : {}) })
        .then(
          () => 'replied',
          (e: Error) => e.name,
        );
      expect(outcome).toBe('TimeoutError');
    }
    expect(ch.droppedMessages - before).toBe(bad.length);
    expect(rec.seen).toEqual([]);
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('Delivered');
    expect(await rec.waitFor(1)).toEqual(['Cancel']);
    await ch.close();
    await rec.ended;
    await nc.close();
  });

  it('the per-subscription buffer is bounded: overflow is dropped and counted', async () => {
    const nc = await connectTo(url);
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix, maxBufferedCommands: 2 });
    const thread = uid('bounded');
    const stream = await ch.openLiveChannel(thread);
    for (let i = 0; i < 5; i++)
      producerNc.publish(threadLiveSubject(prefix, thread), encodeLiveRunCommand(text(`b${i}`)));
    await producerNc.flush();
    await eventually(() => ch.overflowedMessages === 3, 5000);
    const first = await nextWithin(stream, 1000);
    const second = await nextWithin(stream, 1000);
    expect([first, second].map((e) => wire(e!.command))).toEqual([wire(text('b0')), wire(text('b1'))]);
    expect(ch.droppedMessages).toBe(0);
    await ch.close();
    await nc.close();
  });
});

describe('validation', () => {
  it('rejects bad arguments with Validation naming the field, before touching NATS', async () => {
    await expectError(producer.deliverLive('', 'Cancel'), 'Validation', 'thread_id');
    await expectError(producer.deliverLive('   ', 'Cancel'), 'Validation', 'thread_id');
    await expectError(producer.deliverLive(42 as unknown as string, 'Cancel'), 'Validation', 'thread_id');
    await expectError(
      producer.deliverLive('t', 'Pause' as unknown as LiveRunCommand),
      'Validation',
      'command',
    );
    await expectError(
      producer.deliverLive('t', { Messages: 'x' } as unknown as LiveRunCommand),
      'Validation',
      'command',
    );
    await expectError(
      producer.deliverLiveTo({ thread_id: 't', run_id: '' }, 'Cancel'),
      'Validation',
      'target.run_id',
    );
    await expectError(
      producer.deliverLiveTo({ thread_id: 't', run_id: 'r', dispatch_id: '' }, 'Cancel'),
      'Validation',
      'target.dispatch_id',
    );
    await expectError(
      producer.deliverLiveTo(null as unknown as LiveRunTarget, 'Cancel'),
      'Validation',
      'target',
    );
    await expectError(
      producer.deliverLiveTo({ thread_id: 't', run_id: 'r' }, undefined as unknown as LiveRunCommand),
      'Validation',
      'command',
    );
    await expectError(consumer.openLiveChannel(''), 'Validation', 'thread_id');
    await expectError(consumer.openLiveChannel('x'.repeat(4097)), 'Validation', 'thread_id');
    await expectError(
      consumer.openLiveChannelFor({ thread_id: 't' } as unknown as LiveRunTarget),
      'Validation',
      'target',
    );
  });

  it('rejects bad constructor options', () => {
    const make = (o: Record<string, unknown>) => () =>
      new NatsLiveChannel({ nc: producerNc, subjectPrefix: 'live', ...o } as ConstructorParameters<
        typeof NatsLiveChannel
      >[0]);
    for (const [o, field] of [
      [{ subjectPrefix: '' }, 'subjectPrefix'],
      [{ subjectPrefix: 'a.*' }, 'subjectPrefix'],
      [{ requestTimeoutMs: 0 }, 'requestTimeoutMs'],
      [{ requestTimeoutMs: 1.5 }, 'requestTimeoutMs'],
      [{ codec: 'xml' }, 'codec'],
      [{ maxBufferedCommands: 0 }, 'maxBufferedCommands'],
      [{ nc: {} }, 'nc'],
    ] as const) {
      expect(make(o), field).toThrow(StorageError);
      try {
        make(o)();
      } catch (err) {
        expect((err as StorageError).kind).toBe('Validation');
        expect((err as StorageError).detail).toContain(field);
      }
    }
  });
});

describe('lifecycle', () => {
  it('close() ends every stream of the channel; later calls are Io errors', async () => {
    const nc = await connectTo(url);
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    const thread = uid('lifecycle');
    const recA = record(await ch.openLiveChannel(thread));
    const recB = record(await ch.openLiveChannelFor({ thread_id: thread, run_id: 'r' }));
    await ch.close();
    await recA.ended;
    await recB.ended;
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('NoSubscriber');
    await expectError(ch.deliverLive(thread, 'Cancel'), 'Io', 'closed');
    await expectError(ch.openLiveChannel(thread), 'Io', 'closed');
    await ch.close();
    await nc.close();
  });

  it('a closed connection ends open streams and makes deliveries Io errors (not NoSubscriber)', async () => {
    const nc = await connectTo(url);
    const ch = new NatsLiveChannel({ nc, subjectPrefix: prefix });
    const rec = record(await ch.openLiveChannel(uid('nc-closed')));
    await nc.close();
    await rec.ended;
    await expectError(ch.deliverLive('t', 'Cancel'), 'Io', 'nats request');
    await expectError(ch.openLiveChannel('t'), 'Io', 'nats subscribe');
    await ch.close();
  });

  it('a command above the server max_payload is an Io error and the connection stays usable', async () => {
    const thread = uid('huge');
    const rec = record(await consumer.openLiveChannel(thread));
    const maxPayload = producerNc.info?.max_payload ?? 1024 * 1024;
    const err = await expectError(
      producer.deliverLive(thread, text('x'.repeat(maxPayload + 1))),
      'Io',
      'nats request',
    );
    expect(err.detail.length).toBeLessThan(1000);
    expect(await producer.deliverLive(thread, 'Cancel')).toBe('Delivered');
    expect(await rec.waitFor(1)).toEqual(['Cancel']);
  });

  it('redacts credentials from error text', () => {
    expect(redactCredentials('connect to nats://alice:s3cret@host:4222 failed')).toBe(
      'connect to nats://***@host:4222 failed',
    );
    expect(redactCredentials('tls://tok3n@h:1 and nats://h:2')).toBe('tls://***@h:1 and nats://h:2');
  });
});

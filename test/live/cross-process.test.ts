/**
 * Producer here, consumer in a child process (test/live/fixtures/consumer-node.ts): the cross-node path, and
 * what a producer sees once the consumer's process is SIGKILLed (no responders at once, not the 5 s timeout).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue, LiveRunTarget } from '../../src/contract/types.js';
import { NatsLiveChannel, liveSubjectPrefix } from '../../src/live/nats-live.js';
import { natsUrl, testNamespace } from '../support/servers.js';
import { ALL_VARIANTS } from './fixtures/commands.js';
import { connectTo, eventually, wire } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/consumer-node.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const prefix = liveSubjectPrefix(testNamespace('live-xproc'));
let url: string;
let nc: NatsConnection;
let producer: NatsLiveChannel;
let msgpackProducer: NatsLiveChannel;
const children = new Set<ChildProcessWithoutNullStreams>();

interface ConsumerNode {
  child: ChildProcessWithoutNullStreams;
  /** Commands printed so far, as wire JSON strings. */
  seen: string[];
  waitFor(n: number, ms?: number): Promise<string[]>;
  exited: Promise<void>;
}

async function startConsumer(
  which: string | LiveRunTarget,
  ackMode: 'ack' | 'noack' = 'ack',
): Promise<ConsumerNode> {
  const arg = typeof which === 'string' ? which : JSON.stringify(which);
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, prefix, arg, ackMode], {
    cwd: ROOT,
    stdio: 'pipe',
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const seen: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumer not ready in 20 s: ${stderr}`)), 20_000);
    void exited.then(() => reject(new Error(`consumer exited early: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; command?: JsonValue };
      if (msg.ready) {
        clearTimeout(timer);
        resolve();
      }
      if (msg.command !== undefined) seen.push(JSON.stringify(msg.command));
    });
  });
  await ready;
  return {
    child,
    seen,
    exited,
    async waitFor(n, ms = 10_000) {
      await eventually(() => seen.length >= n, ms, 20);
      return seen;
    },
  };
}

beforeAll(async () => {
  url = await natsUrl();
  nc = await connectTo(url);
  producer = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 30_000 });
  msgpackProducer = new NatsLiveChannel({ nc, subjectPrefix: prefix, codec: 'msgpack' });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await producer?.close();
  await msgpackProducer?.close();
  await nc?.close();
});

describe('consumer in another process', () => {
  it('receives and acks every variant in both codecs; the producer sees Delivered', async () => {
    const target: LiveRunTarget = { thread_id: 'xproc-thread', run_id: 'run-1', dispatch_id: 'disp-1' };
    const node = await startConsumer(target);
    for (const { command } of ALL_VARIANTS)
      expect(await producer.deliverLiveTo(target, command)).toBe('Delivered');
    for (const { command } of ALL_VARIANTS)
      expect(await msgpackProducer.deliverLiveTo(target, command)).toBe('Delivered');
    const expected = [...ALL_VARIANTS, ...ALL_VARIANTS].map((v) => wire(v.command));
    expect(await node.waitFor(expected.length)).toEqual(expected);
    // The thread-level subject of the same thread has nobody.
    expect(await producer.deliverLive('xproc-thread', 'Cancel')).toBe('NoSubscriber');
    node.child.kill('SIGTERM');
    await node.exited;
  });

  it('after SIGKILL of the consumer process, deliveries are NoSubscriber without waiting for the timeout', async () => {
    const node = await startConsumer('xproc-killed');
    expect(await producer.deliverLive('xproc-killed', 'Cancel')).toBe('Delivered');
    await node.waitFor(1);
    node.child.kill('SIGKILL');
    await node.exited;
    // The server drops the dead client's interest as soon as it reads the closed socket.
    const probe = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 500 });
    await eventually(
      async () => (await probe.deliverLive('xproc-killed', 'Cancel')) === 'NoSubscriber',
      5000,
    );
    await probe.close();
    // The producer's request timeout is 30 s: five NoSubscribers well inside that can only be no-responders.
    const started = Date.now();
    for (let i = 0; i < 5; i++)
      expect(await producer.deliverLive('xproc-killed', 'Cancel')).toBe('NoSubscriber');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a consumer that never acks makes the producer time out into NoSubscriber', async () => {
    const node = await startConsumer('xproc-noack', 'noack');
    const quick = new NatsLiveChannel({ nc, subjectPrefix: prefix, requestTimeoutMs: 400 });
    const started = Date.now();
    expect(await quick.deliverLive('xproc-noack', 'Cancel')).toBe('NoSubscriber');
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await quick.close();
    expect(await node.waitFor(1)).toEqual([wire('Cancel')]);
    node.child.kill('SIGTERM');
    await node.exited;
  });
});

/**
 * `awaken-mailbox inspect` across threads and its paging, bad paging arguments, `doctor` on a mistyped URL, and
 * the top-level help, run as separate processes like a user would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { createMailboxStore } from '../../src/redis/create-store.js';
import type { RedisMailboxStore } from '../../src/redis/store.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { ROOT, runCli as run } from './helpers.js';

let redis: string;
let store: RedisMailboxStore;
const namespace = testNamespace('cli-tools');

interface Page {
  status: string[];
  limit: number;
  offset: number;
  next_offset: number | null;
  items: { dispatch_id: string; thread_id: string; status: string }[];
}

const inspect = async (...args: string[]): Promise<Page> => {
  const r = await run(['inspect', '--redis', redis, '--namespace', namespace, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Page;
};

beforeAll(async () => {
  redis = await redisUrl();
  store = await createMailboxStore({ redis, signals: 'none', namespace });
  const enqueue = (id: string, thread: string, at: number, maxAttempts = 5) =>
    store.enqueue(
      queuedDispatch({
        dispatch_id: id,
        thread_id: thread,
        run_id: `r-${id}`,
        created_at: at,
        max_attempts: maxAttempts,
      }),
    );
  // Three dead letters on three threads (dead-lettered in the order dl-b, dl-c, dl-a), one Claimed, Queued
  // work on two threads, one Acked.
  let now = 1_000;
  for (const [id, thread] of [
    ['dl-b', 'thread-b'],
    ['dl-c', 'thread-c'],
    ['dl-a', 'thread-a'],
  ] as const) {
    await enqueue(id, thread, now++, 1);
    const [claimed] = await store.claim(thread, 'node-1', 60_000, now++, 1);
    await store.deadLetter(id, claimed!.claim_token!, 'executor gave up', now++);
  }
  await enqueue('ack-1', 'thread-a', now++);
  const [toAck] = await store.claim('thread-a', 'node-1', 60_000, now++, 1);
  await store.ack('ack-1', toAck!.claim_token!, now++);
  await enqueue('claimed-1', 'thread-d', now++);
  await store.claim('thread-d', 'node-1', 60_000, now++, 1);
  await enqueue('q-1', 'thread-e', now++);
  await enqueue('q-2', 'thread-f', now++);
  await enqueue('q-3', 'thread-e', now);
});

afterAll(async () => {
  await store?.destroyNamespace();
  await store?.close();
});

describe('inspect --status without --thread', () => {
  it('lists DeadLetter dispatches across threads, paged with --limit / --offset / next_offset', async () => {
    const first = await inspect('--status', 'DeadLetter', '--limit', '2');
    expect(first.status).toEqual(['DeadLetter']);
    expect(first.items.map((d) => [d.dispatch_id, d.thread_id, d.status])).toEqual([
      ['dl-b', 'thread-b', 'DeadLetter'],
      ['dl-c', 'thread-c', 'DeadLetter'],
    ]);
    expect(first.next_offset).toBe(2);
    const second = await inspect(
      '--status',
      'DeadLetter',
      '--limit',
      '2',
      '--offset',
      String(first.next_offset),
    );
    expect(second.items.map((d) => d.dispatch_id)).toEqual(['dl-a']);
    expect(second.next_offset).toBeNull();
  }, 60_000);

  it('lists Queued (thread by thread) and Claimed dispatches across threads', async () => {
    const queued = await inspect('--status', 'Queued');
    expect(queued.items.map((d) => d.dispatch_id)).toEqual(['q-1', 'q-3', 'q-2']);
    const open = await inspect('--status', 'Queued,Claimed,Acked');
    expect(open.items.map((d) => `${d.dispatch_id}:${d.status}`)).toEqual([
      'q-1:Queued',
      'q-3:Queued',
      'q-2:Queued',
      'claimed-1:Claimed',
      'ack-1:Acked',
    ]);
    expect(open.next_offset).toBeNull();
  }, 60_000);

  it('--thread pages say next_offset too', async () => {
    const page = await inspect('--thread', 'thread-e', '--limit', '1');
    expect(page.items.map((d) => d.dispatch_id)).toEqual(['q-1']);
    expect(page.next_offset).toBe(1);
    const last = await inspect('--thread', 'thread-e', '--limit', '1', '--offset', '1');
    expect(last.items.map((d) => d.dispatch_id)).toEqual(['q-3']);
    expect(last.next_offset).toBeNull();
  }, 60_000);
});

describe('inspect --partitions', () => {
  it('reads every partition of a partitioned namespace: queued, claimed and dead letters across threads', async () => {
    const ns = testNamespace('cli-tools-parts');
    const parted = await createMailboxStore({ redis, signals: 'none', namespace: ns, partitions: 4 });
    try {
      const threads = Array.from({ length: 8 }, (_, i) => `pt-${i}`);
      let now = 1_000;
      for (const t of threads) {
        await parted.enqueue(
          queuedDispatch({ dispatch_id: `q-${t}`, thread_id: t, run_id: `r-q-${t}`, created_at: now++ }),
        );
      }
      await parted.enqueue(
        queuedDispatch({ dispatch_id: 'c-1', thread_id: 'pc-1', run_id: 'r-c-1', created_at: now++ }),
      );
      await parted.claim('pc-1', 'node-1', 60_000, now++, 1);
      await parted.enqueue(
        queuedDispatch({
          dispatch_id: 'dl-1',
          thread_id: 'pd-1',
          run_id: 'r-dl-1',
          created_at: now++,
          max_attempts: 1,
        }),
      );
      const [toFail] = await parted.claim('pd-1', 'node-1', 60_000, now++, 1);
      await parted.deadLetter('dl-1', toFail!.claim_token!, 'gave up', now++);

      const page = async (...args: string[]): Promise<Page> => {
        const r = await run(['inspect', '--redis', redis, '--namespace', ns, '--partitions', '4', ...args]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as Page;
      };
      const queued = await page('--status', 'Queued');
      expect(queued.items.map((d) => d.dispatch_id).sort()).toEqual(threads.map((t) => `q-${t}`).sort());
      expect((await page('--status', 'Claimed')).items.map((d) => d.dispatch_id)).toEqual(['c-1']);
      expect((await page('--status', 'DeadLetter')).items.map((d) => d.dispatch_id)).toEqual(['dl-1']);
      expect((await page('--dispatch', 'dl-1')) as unknown).toMatchObject({
        dispatch: { dispatch_id: 'dl-1', status: 'DeadLetter' },
      });
      const dlq = await run(['dlq', 'list', '--redis', redis, '--namespace', ns, '--partitions', '4']);
      expect(dlq.code, dlq.stderr).toBe(0);
      expect(dlq.stdout).toContain('"dl-1"');
      const bad = await run(['inspect', '--redis', redis, '--namespace', ns, '--partitions', '0']);
      expect(bad.code).toBe(2);
    } finally {
      await parted.destroyNamespace();
      await parted.close();
    }
  }, 60_000);
});

describe('bad inspect arguments are usage errors (exit 2), never silently adjusted', () => {
  it.each([
    [['--limit', '0'], /--limit must be an integer in 1\.\.200, got '0'/],
    [['--limit', '201'], /--limit must be an integer in 1\.\.200, got '201'/],
    [['--limit', '1.5'], /--limit must be an integer/],
    [['--offset', '-1'], /--offset must be an integer in 0\.\./],
    [['--status', ','], /--status needs one or more of/],
    [['--dispatch', 'x', '--thread', 't'], /--dispatch shows one dispatch/],
  ])(
    'inspect %j',
    async (args, message) => {
      const r = await run(['inspect', '--redis', redis, '--namespace', namespace, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    },
    60_000,
  );

  it('a Redis URL with the wrong scheme is a usage error that says what a Redis URL looks like', async () => {
    const r = await run(['inspect', '--redis', 'http://127.0.0.1:6379']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the URL scheme must be redis:\/\/ or rediss:\/\//);
  }, 60_000);
});

describe('doctor', () => {
  it('a Redis URL with the wrong scheme fails the check with the reason', async () => {
    const r = await run(['doctor', '--redis', 'http://127.0.0.1:6379', '--no-nats']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL\s+redis\s+--redis: the URL scheme must be redis:\/\/ or rediss:\/\//);
  }, 60_000);
});

describe('top-level help', () => {
  it('awaken-mailbox --help lists the commands with examples, servers and exit codes', async () => {
    for (const viaBin of [false, true]) {
      const r = await run(['--help'], { bin: viaBin });
      expect(r.code, r.stderr).toBe(0);
      for (const text of [
        /bench \[options\]/,
        /inspect \[options\]/,
        /doctor \[options\]/,
        /Examples:/,
        /awaken-mailbox inspect --namespace prod-eu --status DeadLetter/,
        /\$REDIS_URL/,
        /Exit codes: 0 success, 1 failure/,
        /awaken-mailbox <command> --help/,
      ]) {
        expect(r.stdout).toMatch(text);
      }
    }
  }, 60_000);

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  }, 60_000);

  it('inspect --help and doctor --help carry examples', async () => {
    const i = await run(['inspect', '--help']);
    expect(i.stdout).toMatch(/--status without --thread lists across every thread/);
    expect(i.stdout).toMatch(/Examples:/);
    const d = await run(['doctor', '--help']);
    expect(d.stdout).toMatch(/awaken-mailbox doctor --no-nats --json/);
  }, 60_000);
});

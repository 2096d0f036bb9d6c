/**
 * `awaken-mailbox dlq list|show|retry|purge` against a Redis namespace: through `main` in this process (the
 * CLI's entry point), plus one run of the real command as a separate process.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { runCli } from '../bench/helpers.js';
import { redisUrl, testNamespace } from '../support/servers.js';

const HOUR = 3_600_000;

interface Out {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

let redis: string;
let namespace: string;
let store: RedisMailboxStore;

async function cli(...argv: string[]): Promise<Out> {
  let stdout = '';
  let stderr = '';
  const code = await main(['dlq', ...argv, '--redis', redis, '--namespace', namespace], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
  });
  return { code, json: stdout ? (JSON.parse(stdout) as Record<string, unknown>) : {}, stderr };
}

/** Enqueue, claim and dead-letter, with every timestamp `at` (so the death time is `at`). */
async function dead(id: string, thread: string, at: number, extra: Partial<RunDispatch> = {}): Promise<void> {
  await store.enqueue(
    queuedDispatch({ dispatch_id: id, thread_id: thread, run_id: `r-${id}`, created_at: at, ...extra }),
  );
  const claimed = await store.claimDispatch(id, 'c1', 60_000, at);
  await store.deadLetter(id, claimed?.claim_token as string, `error of ${id}`, at);
}

const ids = (out: Out): string[] => (out.json.items as { dispatch_id: string }[]).map((d) => d.dispatch_id);

describe('awaken-mailbox dlq', () => {
  beforeEach(async () => {
    redis = await redisUrl();
    namespace = testNamespace('dlq-cli');
    store = await createMailboxStore({ redis, namespace, signals: 'redis-streams' });
    const now = Date.now();
    // Dead, oldest first: d1 (3 h ago, t1), d2 (2 h, t2), d3 (30 min, t1), d4 (now, t3); a1 is Acked.
    await dead('d1', 't1', now - 3 * HOUR, { dedupe_key: 'k' });
    await dead('d2', 't2', now - 2 * HOUR);
    await dead('d3', 't1', now - HOUR / 2);
    await dead('d4', 't3', now);
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'a1', thread_id: 't4', run_id: 'r-a1', created_at: now }),
    );
    const [a1] = await store.claim('t4', 'c1', 60_000, now, 1);
    await store.ack('a1', a1?.claim_token as string, now);
  });
  afterEach(async () => {
    await store.destroyNamespace();
    await store.close();
  });

  it('lists dead letters across threads oldest first, in pages, or for one thread', async () => {
    const first = await cli('list', '--limit', '3');
    expect(first.code, first.stderr).toBe(0);
    expect(ids(first)).toEqual(['d1', 'd2', 'd3']);
    expect(first.json).toMatchObject({ namespace, limit: 3, offset: 0, next_offset: 3 });
    const last = await cli('list', '--limit', '3', '--offset', '3');
    expect(ids(last)).toEqual(['d4']);
    expect(last.json.next_offset).toBeNull();
    expect(ids(await cli('list', '--thread', 't1'))).toEqual(['d1', 'd3']);
    expect((await cli('list', '--limit', '0')).code).toBe(2);
  });

  it('shows one dispatch, and fails for an unknown one', async () => {
    const shown = await cli('show', 'd2');
    expect(shown.code).toBe(0);
    expect(shown.json).toMatchObject({
      dead_letter: true,
      dispatch: { dispatch_id: 'd2', status: 'DeadLetter', last_error: 'error of d2' },
    });
    const missing = await cli('show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("dispatch 'nope'");
  });

  it('retries by id (signalled), refuses a held dedupe key, and retries --all --older-than', async () => {
    const one = await cli('retry', 'd2', '--signals', 'redis-streams');
    expect(one.code, one.stderr).toBe(0);
    expect(one.json).toMatchObject({ requeued: 1, done: ['d2'], failed: [] });
    expect(await store.loadDispatch('d2')).toMatchObject({ status: 'Queued', attempt_count: 0 });
    const signalled = await store.pullDispatchSignals(10, 1_000);
    expect(signalled.map((e) => e.dispatch_id)).toContain('d2');
    for (const e of signalled) await e.receipt.ack();

    // d1's dedupe key is now held by a live dispatch: refused, reported, exit 1.
    await store.enqueue(
      queuedDispatch({
        dispatch_id: 'k2',
        thread_id: 't1',
        run_id: 'r-k2',
        created_at: Date.now(),
        dedupe_key: 'k',
      }),
    );
    const refused = await cli('retry', 'd1', 'd3', '--reset-attempts');
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ requeued: 1, done: ['d3'] });
    expect(refused.json.failed).toEqual([{ dispatch_id: 'd1', error: 'already exists: dedupe_key=k' }]);

    // d4 died just now: --older-than 1h leaves it; d1 is still refused.
    const all = await cli('retry', '--all', '--older-than', '1h');
    expect(all.code).toBe(1);
    expect(all.json).toMatchObject({ requeued: 0, done: [] });
    expect((await store.loadDispatch('d4'))?.status).toBe('DeadLetter');
  });

  it('purges by id or --all, and rejects bad usage', async () => {
    const one = await cli('purge', 'd4', 'a1');
    expect(one.code).toBe(1);
    expect(one.json).toMatchObject({ purged: 1, done: ['d4'] });
    expect(one.json.failed).toEqual([{ dispatch_id: 'a1', error: "dispatch 'a1' is Acked, not DeadLetter" }]);
    const all = await cli('purge', '--all', '--thread', 't1');
    expect(all.code).toBe(0);
    expect(all.json).toMatchObject({ purged: 2, done: ['d1', 'd3'] });
    expect(ids(await cli('list'))).toEqual(['d2']);
    expect(await store.loadDispatch('a1')).not.toBeNull();

    for (const bad of [
      ['purge'],
      ['purge', 'd2', '--all'],
      ['purge', 'd2', '--older-than', '1h'],
      ['purge', '--all', '--older-than', '5x'],
      ['retry', '--all', '--limit', '0'],
      ['retry', 'd2', '--signals', 'carrier-pigeon'],
    ]) {
      const out = await cli(...bad);
      expect(out.code, bad.join(' ')).toBe(2);
    }
    expect((await store.loadDispatch('d2'))?.status).toBe('DeadLetter');
  });

  it('runs as the real command', async () => {
    const out = await runCli(['dlq', 'list', '--redis', redis, '--namespace', namespace, '--limit', '1']);
    expect(out.code, out.stderr).toBe(0);
    expect((JSON.parse(out.stdout) as { items: { dispatch_id: string }[] }).items[0]?.dispatch_id).toBe('d1');
  });
});

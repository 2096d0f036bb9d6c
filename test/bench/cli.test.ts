/**
 * `awaken-mailbox inspect` and `doctor`, and the bin launcher, as separate processes.
 */
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { createMailboxStore } from '../../src/redis/create-store.js';
import { freePort, natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { BIN, runCli as run } from './helpers.js';

let redis: string;
let nats: string;

beforeAll(async () => {
  [redis, nats] = await Promise.all([redisUrl(), natsUrl()]);
});

describe('inspect', () => {
  const namespace = testNamespace('bench-inspect');

  it("prints a thread's dispatches, one dispatch and the counts as JSON", async () => {
    const store = await createMailboxStore({ redis, signals: 'none', namespace });
    try {
      for (const [i, id] of ['a', 'b', 'c'].entries()) {
        await store.enqueue(
          queuedDispatch({ dispatch_id: id, thread_id: 'thread-1', run_id: `r-${id}`, created_at: 1000 + i }),
        );
      }
      await store.cancel('c', 2000);
      const thread = await run([
        'inspect',
        '--redis',
        redis,
        '--namespace',
        namespace,
        '--thread',
        'thread-1',
      ]);
      expect(thread.code, thread.stderr).toBe(0);
      const t = JSON.parse(thread.stdout) as {
        items: { dispatch_id: string; status: string }[];
        counts_in_page: Record<string, number>;
      };
      expect(t.items.map((d) => d.dispatch_id)).toEqual(['a', 'b', 'c']);
      expect(t.counts_in_page).toEqual({ Queued: 2, Cancelled: 1 });
      const queued = await run([
        'inspect',
        '--redis',
        redis,
        '--namespace',
        namespace,
        '--thread',
        'thread-1',
        '--status',
        'Cancelled',
      ]);
      expect((JSON.parse(queued.stdout) as { items: unknown[] }).items).toHaveLength(1);
      const one = await run(['inspect', '--redis', redis, '--namespace', namespace, '--dispatch', 'b']);
      expect(JSON.parse(one.stdout)).toMatchObject({
        dispatch: { dispatch_id: 'b', status: 'Queued', run_id: 'r-b' },
      });
      const counts = await run(['inspect', '--redis', redis, '--namespace', namespace]);
      expect(JSON.parse(counts.stdout)).toMatchObject({
        counts: { Queued: 2, Claimed: 0, Acked: 0, Cancelled: 1, Superseded: 0, DeadLetter: 0 },
        queued_thread_ids: ['thread-1'],
      });
      const bad = await run([
        'inspect',
        '--redis',
        redis,
        '--namespace',
        namespace,
        '--thread',
        'x',
        '--status',
        'Nope',
      ]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--status 'Nope'/);
    } finally {
      await store.destroyNamespace();
      await store.close();
    }
  }, 60_000);
});

describe('doctor', () => {
  it('passes against the test servers', async () => {
    const r = await run(['doctor', '--redis', redis, '--nats', nats, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: { name: string; ok: boolean; detail: string }[];
    };
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'redis functions')?.detail).toMatch(/^FUNCTION available/);
    expect(report.checks.map((c) => c.name)).toEqual([
      'redis',
      'redis version',
      'redis lua',
      'redis functions',
      'nats',
      'nats version',
      'nats jetstream',
    ]);
  });

  it('exits 1 with a clear message when a server is missing', async () => {
    const port = await freePort();
    const r = await run([
      'doctor',
      '--redis',
      `redis://127.0.0.1:${port}`,
      '--nats',
      `nats://127.0.0.1:${port}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL\s+redis\s+cannot use Redis at redis:\/\/127\.0\.0\.1:\d+/);
    expect(r.stdout).toMatch(/FAIL\s+nats\s+cannot connect to NATS/);
    expect(r.stdout).toMatch(/some checks failed/);
  });
});

describe('bin launcher', () => {
  it('runs the CLI (compiled when dist exists, else through tsx)', async () => {
    const r = await run(['doctor', '--redis', redis, '--no-nats'], { bin: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ok\s+redis version/);
    expect(existsSync(BIN)).toBe(true);
    const help = await run(['--help'], { bin: true });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/bench/);
    expect(help.stdout).toMatch(/inspect/);
    expect(help.stdout).toMatch(/doctor/);
  });
});

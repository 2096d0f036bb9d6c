/**
 * A signalled dispatch whose record is corrupt beyond the fields the signal filter reads (it only checks
 * dispatch_id, thread_id, status and available_at) fails its claim with `Serialization`. The Mailbox must ack
 * that signal, not nack it: a redelivery fails the same way at once, on every node, without end. The
 * sweeper signals the still-Queued dispatch again after its republish delay; healthy threads run meanwhile.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import type { Mailbox } from '../../src/mailbox/index.js';
import { eventually, loadStatus, newMailbox, openBackend, Recorder, type Backend } from './harness.js';

describe('Mailbox on redis-streams: a corrupt signalled record', () => {
  let backend: Backend | null = null;
  let mailbox: Mailbox | null = null;
  let raw: Redis | null = null;

  afterEach(async () => {
    await mailbox?.stop();
    raw?.disconnect();
    await backend?.cleanup();
    mailbox = null;
    raw = null;
    backend = null;
  });

  it('acks its signal (no redelivery loop) and keeps running healthy threads', async () => {
    backend = await openBackend('redis-streams', 'corrupt-signal');
    const store = (await backend.openStore()) as RedisMailboxStore;
    raw = new Redis(backend.connection!.redis);
    const now = Date.now();
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'bad', thread_id: 'tb', run_id: 'rb', created_at: now }),
    );
    await raw.hdel(store.keys.record('bad'), 'run_id');

    const warnings: string[] = [];
    const logger = {
      warn: (msg: string, fields?: Record<string, unknown>) =>
        warnings.push(`${msg} ${JSON.stringify(fields)}`),
    };
    mailbox = newMailbox(store, new Recorder(), 'node-a', {}, { logger });
    await mailbox.start();
    await store.enqueue(
      queuedDispatch({ dispatch_id: 'good', thread_id: 'tg', run_id: 'rg', created_at: now }),
    );
    await loadStatus(store, 'good', 'Acked');
    await eventually('the failed claim of the corrupt record', () =>
      warnings.some((w) => w.startsWith('claim failed') && w.includes('run_id')),
    );
    // Acked: neither pending in the group nor back in the stream (a nack would put it back at once, so the
    // two are never both empty while it loops).
    await eventually('the corrupt record’s signal to be settled for good', async () => {
      const pending = (await raw!.xpending(store.keys.signalStream, store.keys.signalGroup)) as [number];
      const length = await raw!.xlen(store.keys.signalStream);
      return pending[0] === 0 && length === 0;
    });
    expect((await store.loadDispatch('good'))?.status).toBe('Acked');
    await expect(store.loadDispatch('bad')).rejects.toMatchObject({ kind: 'Serialization' });
  });
});

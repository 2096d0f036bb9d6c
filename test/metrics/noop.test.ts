/**
 * Without an OpenTelemetry SDK nothing is instrumented: stores and Mailboxes keep their own methods (no
 * wrapper on the instance), so metrics cost nothing until an application installs an SDK.
 */
import { describe, expect, it } from 'vitest';
import { Mailbox } from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { instrumentMailbox, instrumentStore } from '../../src/metrics/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';

describe('metrics without an SDK', () => {
  it('leaves the memory store and the Mailbox untouched', async () => {
    const store = new MemoryMailboxStore();
    const mailbox = new Mailbox({ store, executor: async () => ({ kind: 'completed' }) });
    try {
      expect(Object.hasOwn(store, 'claim')).toBe(false);
      expect(Object.hasOwn(mailbox, 'stop')).toBe(false);
      expect(instrumentStore(store)).toBe(false);
      expect(instrumentMailbox(mailbox)).toBe(false);
      expect(Object.hasOwn(store, 'claim')).toBe(false);
      expect(Object.hasOwn(mailbox, 'stop')).toBe(false);
    } finally {
      await mailbox.stop();
      await store.close();
    }
  });

  it('leaves the Redis store untouched', async () => {
    const store = await createMailboxStore({
      redis: await redisUrl(),
      namespace: testNamespace('metrics-noop'),
      signals: 'none',
    });
    try {
      expect(Object.hasOwn(store, 'claim')).toBe(false);
      expect(Object.hasOwn(store, 'enqueue')).toBe(false);
    } finally {
      await store.destroyNamespace();
      await store.close();
    }
  });
});

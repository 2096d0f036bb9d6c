/**
 * A Mailbox in a child process (fixtures/mailbox-node.ts): after `stop()` and the caller's `store.close()` the
 * process exits by itself, proving the Mailbox left no timers or sockets behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openBackend } from './harness.js';
import type { Backend, BackendKind } from './harness.js';
import { startNode } from './children.js';

describe.each(['memory', 'jetstream', 'redis-streams'] as BackendKind[])(
  'clean exit after stop (%s)',
  (kind) => {
    let backend: Backend | null = null;
    afterAll(async () => {
      if (backend?.distributed) await backend.openStore(); // a handle to destroy the child's namespace with
      await backend?.cleanup();
    });

    it('a process whose Mailbox stopped and store closed exits on its own', async () => {
      backend = await openBackend(kind, 'mailbox-exit');
      const node = startNode({
        mode: 'exit',
        backend: kind,
        ...(backend.connection ?? {}),
        threadId: 'exit',
        leaseMs: 2_000,
      });
      const code = await Promise.race([
        node.exited,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 25_000).unref()),
      ]);
      expect(code, node.stderr()).toBe(0);
      expect(node.lines.at(-1)).toEqual({ done: true, completed: 6 });
    });
  },
);

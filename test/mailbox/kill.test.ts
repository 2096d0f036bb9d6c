/**
 * A Mailbox node in a child process (fixtures/mailbox-node.ts) claims work and is SIGKILLed mid-run; the surviving
 * node finishes that work once the killed node's lease expires.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Recorder, collectEvents, loadStatus, newMailbox, openBackend } from './harness.js';
import type { Backend, BackendKind } from './harness.js';
import { eventually } from './wait.js';
import { startNode } from './children.js';

describe.each(['jetstream', 'redis-streams'] as BackendKind[])(
  'recovery after a killed node (%s)',
  (kind) => {
    let backend: Backend | null = null;
    afterAll(async () => {
      await backend?.cleanup();
    });

    it('the surviving node finishes the killed node’s work after its lease expires', async () => {
      backend = await openBackend(kind, 'mailbox-kill');
      const store = await backend.openStore();
      const recorder = new Recorder();
      const survivor = newMailbox(await backend.openStore(), recorder, 'survivor', { sweepIntervalMs: 150 });
      const events = collectEvents(survivor);
      try {
        const node = startNode({
          mode: 'hang',
          backend: kind,
          ...backend.connection,
          threadId: 'kill-t',
          leaseMs: 1_500,
        });
        const started = await eventually(
          `the doomed node to start its run (stderr: ${node.stderr()})`,
          () => node.lines.find((l) => typeof l.started === 'string')?.started as string | undefined,
          20_000,
        );
        const claimed = await store.loadDispatch(started);
        expect(claimed).toMatchObject({ status: 'Claimed', claimed_by: 'doomed-node' });
        // Started only now, so it cannot win the claim race against the doomed node; it runs beside it from here
        // and must leave the live claim alone.
        await survivor.start();
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await store.loadDispatch(started))?.status).toBe('Claimed');

        node.child.kill('SIGKILL');
        await node.exited;
        const killedAt = Date.now();

        const acked = await loadStatus(store, started, 'Acked', 15_000);
        const [exec] = recorder.ofDispatch(started);
        expect(exec?.consumer).toBe('survivor');
        expect(exec?.attempt).toBe(2);
        expect(exec!.startedAt).toBeGreaterThanOrEqual(killedAt);
        expect(acked.attempt_count).toBe(1);
        expect(events.some((e) => e.name === 'retried' && e.dispatch.dispatch_id === started)).toBe(true);
      } finally {
        await survivor.stop();
      }
    });
  },
);

/**
 * The Mailbox scenarios every backend runs (memory, Redis + JetStream, Redis + Redis Streams). Two Mailbox
 * instances ("nodes") share one store namespace; on distributed backends each has its own connections.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { Message } from '../../src/contract/types.js';
import { PermanentError } from '../../src/mailbox/index.js';
import type { Mailbox, MailboxConfig, MailboxOptions, QueuedMessages } from '../../src/mailbox/index.js';
import {
  Recorder,
  abortableSleep,
  behaviours,
  collectEvents,
  eventually,
  loadStatus,
  maxOverlap,
  newMailbox,
  openBackend,
} from './harness.js';
import type { Backend, BackendKind } from './harness.js';

export function defineMailboxSuite(kind: BackendKind): void {
  describe(`Mailbox on ${kind}`, () => {
    let backend: Backend | null = null;
    const mailboxes: Mailbox[] = [];

    afterEach(async () => {
      await Promise.all(mailboxes.splice(0).map((m) => m.stop()));
      await backend?.cleanup();
      backend = null;
    });

    async function nodes(
      count: number,
      recorder: Recorder,
      config: Partial<MailboxConfig> = {},
      extra: Partial<MailboxOptions> = {},
    ): Promise<{ stores: MailboxStore[]; nodes: Mailbox[] }> {
      backend = await openBackend(kind, 'mailbox');
      const stores: MailboxStore[] = [];
      const created: Mailbox[] = [];
      for (let i = 0; i < count; i++) {
        const store = await backend.openStore();
        const mailbox = newMailbox(store, recorder, `node-${i}`, config, extra);
        mailboxes.push(mailbox);
        await mailbox.start();
        stores.push(store);
        created.push(mailbox);
      }
      return { stores, nodes: created };
    }

    it('runs one dispatch at a time per thread across two instances under load', async () => {
      const recorder = new Recorder((ctx, exec) =>
        behaviours.quick(2 + Math.floor(Math.random() * 8))(ctx, exec),
      );
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder);
      let completed = 0;
      for (const m of [a, b]) m!.on('completed', () => completed++);
      const threads = 6;
      const perThread = 6;
      // Each thread starts with a foreground run on alternating nodes (inline claim: that node runs it), so both
      // nodes certainly execute work; the background load then lands on whichever node claims first.
      for (let t = 0; t < threads; t++) {
        const started = await (t % 2 === 0 ? a! : b!).submit({
          threadId: `load-${t}`,
          runId: `load-${t}-warm`,
        });
        expect(started.status).toBe('Running');
      }
      const submits: Promise<unknown>[] = [];
      for (let i = 1; i < perThread; i++) {
        for (let t = 0; t < threads; t++) {
          const node = (i + t) % 2 === 0 ? a! : b!;
          submits.push(node.submitBackground({ threadId: `load-${t}`, runId: `load-${t}-${i}` }));
        }
      }
      await Promise.all(submits);
      await eventually('every dispatch to complete', () => completed === threads * perThread, 20_000);

      const byThread = new Map<string, { start: number; end: number }[]>();
      for (const e of recorder.executions) {
        expect(e.end).not.toBeNull();
        const list = byThread.get(e.threadId) ?? [];
        list.push({ start: e.start, end: e.end! });
        byThread.set(e.threadId, list);
      }
      expect(byThread.size).toBe(threads);
      for (const [, list] of byThread) {
        list.sort((x, y) => x.start - y.start);
        for (let i = 1; i < list.length; i++) expect(list[i]!.start).toBeGreaterThanOrEqual(list[i - 1]!.end);
      }
      // Every dispatch ran exactly once, and both nodes took part.
      expect(new Set(recorder.executions.map((e) => e.dispatchId)).size).toBe(threads * perThread);
      expect(recorder.executions.length).toBe(threads * perThread);
      for (let t = 0; t < threads; t++)
        expect(recorder.ofRun(`load-${t}-warm`)[0]?.consumer).toBe(`node-${t % 2}`);
      for (let t = 0; t < threads; t++) {
        const all = await store!.listDispatches(`load-${t}`, null, 100, 0);
        expect(all.map((d) => d.status)).toEqual(Array(perThread).fill('Acked'));
      }
    });

    it('interrupt aborts the running run, and the next submit runs', async () => {
      const recorder = new Recorder().on('slow', behaviours.untilAborted());
      // submit() interrupts first (epoch 1), so the explicit interrupt below makes epoch 2.
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder);
      const events = collectEvents(a!);
      const slow = await a!.submit({ threadId: 'irq', runId: 'slow' });
      expect(slow.status).toBe('Running');
      await eventually('slow run to start', () => recorder.ofRun('slow').length === 1);

      const result = await a!.interrupt('irq');
      expect(result).toMatchObject({ newDispatchEpoch: 2, supersededCount: 0, activeCancelled: true });
      await eventually('slow run to end', () => recorder.ofRun('slow')[0]!.end !== null);
      expect(recorder.ofRun('slow')[0]!.abortReason).toBe('interrupt');
      await loadStatus(store!, slow.dispatchId, 'Superseded');
      await eventually('superseded event', () =>
        events.some((e) => e.name === 'superseded' && e.dispatch.dispatch_id === slow.dispatchId),
      );

      const next = await a!.submit({ threadId: 'irq', runId: 'next' });
      expect(next.status).toBe('Running');
      const acked = await loadStatus(store!, next.dispatchId, 'Acked');
      expect(acked.run_status).toBe('done');
      expect(acked.termination).toEqual({ type: 'natural_end' });
    });

    it('a foreground submit on another instance pre-empts the running run (live Cancel, wait for release)', async () => {
      const recorder = new Recorder().on('first', behaviours.untilAborted());
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder);
      const first = await a!.submit({ threadId: 'preempt', runId: 'first' });
      await eventually('first run to start', () => recorder.ofRun('first').length === 1);

      const second = await b!.submit({ threadId: 'preempt', runId: 'second' });
      expect(second.status).toBe('Running');
      const firstExec = recorder.ofRun('first')[0]!;
      expect(firstExec.end).not.toBeNull();
      // Cross-node the abort arrives as a live Cancel, and the run still sees why: an interrupt, as locally.
      expect(firstExec.abortReason).toBe('interrupt');
      expect((await store!.loadDispatch(first.dispatchId))?.status).toBe('Superseded');
      await loadStatus(store!, second.dispatchId, 'Acked');
      expect(recorder.ofRun('second')[0]!.consumer).toBe('node-1');
      expect(recorder.ofRun('second')[0]!.start).toBeGreaterThanOrEqual(firstExec.end!);
    });

    it('cancel from another instance reaches the running run; queued dispatches are cancelled in the store', async () => {
      const recorder = new Recorder().otherwise(behaviours.untilAborted());
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder);
      const events = collectEvents(b!);

      const byDispatch = await a!.submit({ threadId: 'cx-1', runId: 'cx-run-1' });
      await eventually('run 1 to start', () => recorder.ofRun('cx-run-1').length === 1);
      const queued = await a!.submitBackground({ threadId: 'cx-1', runId: 'cx-queued' });
      expect(queued.status).toBe('Queued');
      expect(await b!.cancel(queued.dispatchId)).toBe(true);
      expect((await store!.loadDispatch(queued.dispatchId))?.status).toBe('Cancelled');
      expect(events.some((e) => e.name === 'cancelled' && e.dispatch.dispatch_id === queued.dispatchId)).toBe(
        true,
      );

      expect(await b!.cancel(byDispatch.dispatchId)).toBe(true);
      await eventually('run 1 to end', () => recorder.ofRun('cx-run-1')[0]!.end !== null);
      expect(recorder.ofRun('cx-run-1')[0]!.abortReason).toBe('cancel');
      const acked = await loadStatus(store!, byDispatch.dispatchId, 'Acked');
      expect(acked.termination).toEqual({ type: 'cancelled' });

      // By thread id.
      await a!.submit({ threadId: 'cx-2', runId: 'cx-run-2' });
      await eventually('run 2 to start', () => recorder.ofRun('cx-run-2').length === 1);
      expect(await b!.cancel('cx-2')).toBe(true);
      await eventually('run 2 to end', () => recorder.ofRun('cx-run-2')[0]!.end !== null);
      expect(recorder.ofRun('cx-run-2')[0]!.abortReason).toBe('cancel');

      expect(await b!.cancel('no-such-id')).toBe(false);
    });

    it('retries a failed run after its backoff without any new submit', async () => {
      const recorder = new Recorder().on('flaky', async (ctx) => {
        if (ctx.attempt === 1) throw new Error('transient boom');
        return { kind: 'completed', response: 'second time lucky' };
      });
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { defaultRetryDelayMs: 300 });
      const events = collectEvents(a!);
      const sub = await a!.submitBackground({ threadId: 'retry', runId: 'flaky' });
      const acked = await loadStatus(store!, sub.dispatchId, 'Acked');
      const [first, second] = recorder.ofRun('flaky');
      expect(second!.attempt).toBe(2);
      // attempt_count 0 at claim → retry_at = nack time + 300 ms; the retry cannot start before it.
      expect(second!.startedAt - first!.endedAt!).toBeGreaterThanOrEqual(290);
      expect(acked.attempt_count).toBe(1);
      expect(acked.run_response).toBe('second time lucky');
      const retried = events.find((e) => e.name === 'retried');
      expect(retried?.extra[0]).toBe('transient boom');
      expect(retried?.dispatch.status).toBe('Queued');
    });

    it('dead-letters after max attempts, and at once on a permanent failure', async () => {
      const recorder = new Recorder()
        .on('always-fails', async () => {
          throw new Error('still broken');
        })
        .on('permanent', async () => {
          throw new PermanentError('agent not found');
        })
        .on('fail-outcome', async () => ({ kind: 'fail', error: 'invalid activation' }));
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { defaultRetryDelayMs: 50 });
      const events = collectEvents(a!);
      const failing = await a!.submitBackground({ threadId: 'dl-1', runId: 'always-fails', maxAttempts: 3 });
      const dead = await loadStatus(store!, failing.dispatchId, 'DeadLetter');
      expect(recorder.ofRun('always-fails').map((e) => e.attempt)).toEqual([1, 2, 3]);
      expect(dead.attempt_count).toBe(3);
      expect(dead.last_error).toBe('still broken');
      await eventually('deadLettered event', () =>
        events.some((e) => e.name === 'deadLettered' && e.dispatch.dispatch_id === failing.dispatchId),
      );

      const permanent = await a!.submitBackground({ threadId: 'dl-2', runId: 'permanent' });
      const dl2 = await loadStatus(store!, permanent.dispatchId, 'DeadLetter');
      expect(recorder.ofRun('permanent')).toHaveLength(1);
      expect(dl2.attempt_count).toBe(0);
      expect(dl2.last_error).toBe('agent not found');
      expect(dl2.run_error).toBe('agent not found');

      const outcome = await a!.submitBackground({ threadId: 'dl-3', runId: 'fail-outcome' });
      const dl3 = await loadStatus(store!, outcome.dispatchId, 'DeadLetter');
      expect(recorder.ofRun('fail-outcome')).toHaveLength(1);
      expect(dl3.last_error).toBe('invalid activation');
    });

    it('steers a run with messages and decisions (across instances), and queues messages durably otherwise', async () => {
      const sunk: QueuedMessages[] = [];
      const recorder = new Recorder().on('steered', behaviours.untilAborted()).otherwise(behaviours.quick());
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder, {}, { messageSink: (d) => void sunk.push(d) });
      const run = await a!.submit({ threadId: 'steer', runId: 'steered' });
      await eventually('steered run to start', () => recorder.ofRun('steered').length === 1);
      const msg: Message = { id: 'm-1', role: 'user', content: [{ type: 'text', text: 'hello' }] };

      expect(await b!.sendMessages('steer', [msg])).toBe('live');
      expect(await a!.sendMessages('steer', [{ ...msg, id: 'm-2' }], { runId: 'steered' })).toBe('live');
      const resume = {
        decision_id: 'd1',
        action: 'resume' as const,
        result: { approved: true },
        updated_at: 1,
      };
      expect(await b!.sendDecision(run.dispatchId, 'call-1', resume)).toBe(true);
      expect(await a!.sendDecision('steered', 'call-2', resume)).toBe(true);
      const exec = recorder.ofRun('steered')[0]!;
      await eventually('four commands', () => exec.commands.length === 4);
      expect(exec.commands[0]).toEqual({ Messages: [msg] });
      expect(exec.commands[2]).toMatchObject({
        Decision: [['call-1', { decision_id: 'd1', action: 'resume' }]],
      });
      expect(sunk).toHaveLength(0);

      // A run id that is not the running one, then a thread with no run: durable fallback.
      expect(await b!.sendMessages('steer', [{ ...msg, id: 'm-3' }], { runId: 'other' })).toBe('queued');
      expect(await b!.sendMessages('idle-thread', [{ ...msg, id: 'm-4' }])).toBe('queued');
      expect(sunk.map((d) => [d.threadId, d.dispatchId, d.runId])).toEqual([
        ['steer', 'm-3', 'durable-msg-m-3'],
        ['idle-thread', 'm-4', 'durable-msg-m-4'],
      ]);
      const durable = await loadStatus(store!, 'm-4', 'Acked');
      expect(durable.run_id).toBe('durable-msg-m-4');
      // Sending the same message again does not queue a second run.
      expect(await b!.sendMessages('idle-thread', [{ ...msg, id: 'm-4' }])).toBe('queued');
      expect(await store!.listDispatches('idle-thread', null, 10, 0)).toHaveLength(1);
      expect(await b!.sendDecision('not-a-dispatch', 'call-3', resume)).toBe(false);
    });

    it('steers each run of a chain on one thread at its exact target; the thread’s other runs are not reached', async () => {
      // Each run ends once it received a command (or after 10 s, which fails the test).
      const recorder = new Recorder(behaviours.untilCommanded());
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder);
      const producer = backend!.distributed ? await backend!.openStore() : store!;
      // How the node subscribes: with NATS, one subscription for the whole chain, none per run.
      const opened = { thread: 0, run: 0, threadClosed: 0 };
      type Closable = { close(): Promise<void> } | null;
      const node = store as MailboxStore & { openThreadRuns?: (...a: never[]) => Promise<Closable> };
      const ownOpenThreadRuns = node.openThreadRuns?.bind(node);
      if (ownOpenThreadRuns) {
        node.openThreadRuns = async (...a) => {
          opened.thread++;
          const runs = await ownOpenThreadRuns(...a);
          if (runs) {
            const close = runs.close.bind(runs);
            // Counted once the UNSUB is on its way.
            runs.close = () =>
              close().then(() => {
                opened.threadClosed++;
              });
          }
          return runs;
        };
      }
      const ownOpenFor = node.openLiveChannelFor.bind(node);
      node.openLiveChannelFor = (target) => {
        opened.run++;
        return ownOpenFor(target);
      };
      const ids = [1, 2, 3].map((n) => `chain-${n}`);
      for (const runId of ids) await a!.submitBackground({ threadId: 'chain', runId });
      const targets: { thread_id: string; run_id: string; dispatch_id: string }[] = [];
      const msg = (n: number): Message => ({
        id: `m-${n}`,
        role: 'user',
        content: [{ type: 'text', text: `${n}` }],
      });
      /** NoSubscriber, answered at once (far below the 5 s request timeout a silent subscriber would cost). */
      const expectNoSubscriberAtOnce = async (target: (typeof targets)[number]): Promise<boolean> => {
        const start = performance.now();
        const outcome = await producer.deliverLiveTo(target, 'Cancel');
        expect(outcome).toBe('NoSubscriber');
        return performance.now() - start < 2_000;
      };
      for (const [i, runId] of ids.entries()) {
        const exec = await eventually(`${runId} to start`, () => recorder.ofRun(runId)[0]);
        const target = { thread_id: 'chain', run_id: runId, dispatch_id: exec.dispatchId };
        targets.push(target);
        // The run before this one is over: nobody takes its commands, and the answer comes at once.
        if (i > 0) expect(await expectNoSubscriberAtOnce(targets[i - 1]!)).toBe(true);
        expect(await producer.deliverLiveTo(target, { Messages: [msg(i)] })).toBe('Delivered');
        await loadStatus(store!, exec.dispatchId, 'Acked');
        expect(exec.commands).toEqual([{ Messages: [msg(i)] }]);
      }
      // The thread is idle on this node: nothing of it stays subscribed once its linger period is over.
      if (backend!.distributed)
        await eventually('thread subscription closed', () => opened.threadClosed === 1);
      // (A request racing the UNSUB on the server may still wait out its timeout once: ask again then.)
      await eventually('no subscriber left', () => expectNoSubscriberAtOnce(targets[2]!), 20_000);
      expect(opened).toEqual(
        backend!.distributed
          ? { thread: 1, run: 0, threadClosed: 1 }
          : { thread: 0, run: 3, threadClosed: 0 },
      );
    });

    it('does not deliver commands to a run whose executor already returned', async () => {
      const recorder = new Recorder();
      const {
        nodes: [a],
      } = await nodes(1, recorder);
      const msg: Message = { id: 'late-1', role: 'user', content: [{ type: 'text', text: 'too late' }] };
      const answer = new Promise<string>((resolve, reject) => {
        // Emitted after the ack, while the run is still being wound down on this node.
        a!.once('completed', () => {
          a!.sendMessages('late', [msg]).then(resolve, reject);
        });
      });
      await a!.submitBackground({ threadId: 'late', runId: 'short' });
      expect(await answer).toBe('queued');
      expect(recorder.ofRun('short')[0]!.commands).toEqual([]);
    });

    /** One node with fast renewals running `doomed` until it is aborted; resolves once it started. */
    async function startDoomedRun(): Promise<{
      store: MailboxStore;
      recorder: Recorder;
      dispatchId: string;
    }> {
      const recorder = new Recorder().on('doomed', behaviours.untilAborted());
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { leaseMs: 1_500, leaseRenewalIntervalMs: 200 });
      const sub = await a!.submit({ threadId: 'lease', runId: 'doomed' });
      await eventually('doomed run to start', () => recorder.ofRun('doomed').length === 1);
      return { store: store!, recorder, dispatchId: sub.dispatchId };
    }

    it('aborts a run whose lease is lost (claim superseded behind its back)', async () => {
      const { store, recorder, dispatchId } = await startDoomedRun();
      // Superseded straight through the store: the Mailbox does not hear of it, its next renewal does.
      const claimed = await store.loadDispatch(dispatchId);
      await store.supersedeClaimed(dispatchId, claimed?.claim_token ?? '', Date.now(), 'taken away');
      await eventually('doomed run to end', () => recorder.ofRun('doomed')[0]!.end !== null, 5_000);
      expect(recorder.ofRun('doomed')[0]!.abortReason).toBe('lease-lost');
    });

    it('aborts a run whose thread was interrupted behind its back, and releases it after the run ends', async () => {
      const { store, recorder, dispatchId } = await startDoomedRun();
      // An interrupt straight through the store: the renewal sees the newer epoch and aborts the run instead
      // of renewing (which would supersede the claim while the executor still runs).
      await store.interrupt('lease', Date.now());
      await eventually('doomed run to end', () => recorder.ofRun('doomed')[0]!.end !== null, 5_000);
      const run = recorder.ofRun('doomed')[0]!;
      expect(run.abortReason).toBe('interrupt');
      const released = await loadStatus(store, dispatchId, 'Superseded');
      expect(run.endedAt).not.toBeNull();
      expect(released.completed_at ?? 0).toBeGreaterThanOrEqual(run.endedAt ?? Infinity);
    });

    it('renews the lease of a long run, with the suspended lease while waiting', async () => {
      const recorder = new Recorder().on('long', async (ctx) => {
        ctx.setWaiting(true);
        await abortableSleep(1_200, ctx.signal);
        return { kind: 'completed', termination: { type: 'suspended' } };
      });
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { leaseMs: 600, leaseRenewalIntervalMs: 150, suspendedLeaseMs: 60_000 });
      const sub = await a!.submit({ threadId: 'renew', runId: 'long' });
      const claimed = await eventually('a long lease', async () => {
        const d = await store!.loadDispatch(sub.dispatchId);
        return d?.lease_until != null && d.lease_until - Date.now() > 30_000 ? d : undefined;
      });
      expect(claimed.status).toBe('Claimed');
      const acked = await loadStatus(store!, sub.dispatchId, 'Acked');
      expect(acked.run_status).toBe('waiting');
      expect(recorder.ofRun('long')[0]!.abortReason).toBeNull();
    });

    it('recovers queued work at start and runs work another node left behind once its lease expires', async () => {
      backend = await openBackend(kind, 'mailbox');
      const store = await backend.openStore();
      const now = Date.now();
      await store.enqueue(
        queuedDispatch({ dispatch_id: 'pre-1', thread_id: 'rec-1', run_id: 'pre-run-1', created_at: now }),
      );
      // An abandoned claim: claimed by a node that is gone, lease already short.
      await store.enqueue(
        queuedDispatch({ dispatch_id: 'pre-2', thread_id: 'rec-2', run_id: 'pre-run-2', created_at: now }),
      );
      const [abandoned] = await store.claim('rec-2', 'gone-node', 300, Date.now(), 1);
      expect(abandoned?.dispatch_id).toBe('pre-2');

      const recorder = new Recorder();
      const mailbox = newMailbox(await backend.openStore(), recorder, 'survivor');
      mailboxes.push(mailbox);
      const events = collectEvents(mailbox);
      await mailbox.start();
      await loadStatus(store, 'pre-1', 'Acked');
      const recovered = await loadStatus(store, 'pre-2', 'Acked');
      expect(recovered.attempt_count).toBe(1);
      expect(recorder.ofDispatch('pre-2')[0]!.attempt).toBe(2);
      expect(events.some((e) => e.name === 'retried' && e.dispatch.dispatch_id === 'pre-2')).toBe(true);
    });

    it('stop() lets runs finish within the grace period, hands the rest back without costing an attempt, and keeps a stubborn run until it returns', async () => {
      const recorder = new Recorder()
        .on('finishes', behaviours.quick(150))
        .on('polite', behaviours.untilAborted())
        .on('stubborn', behaviours.stubborn(1_500));
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { stopGraceMs: 400 });
      const events = collectEvents(a!);
      const finishes = await a!.submit({ threadId: 'stop-1', runId: 'finishes' });
      const polite = await a!.submit({ threadId: 'stop-2', runId: 'polite' });
      const stubborn = await a!.submit({ threadId: 'stop-3', runId: 'stubborn' });
      await eventually('three runs', () => recorder.executions.length === 3);

      const t0 = Date.now();
      const report = await a!.stop();
      const took = Date.now() - t0;
      // Bounded: the grace period plus a short settle window, whatever the stubborn executor does.
      expect(took).toBeLessThan(2_000);
      expect(report).toEqual({
        finished: 1,
        handedBack: 1,
        stillRunning: [{ dispatchId: stubborn.dispatchId, threadId: 'stop-3', runId: 'stubborn' }],
      });
      expect((await store!.loadDispatch(finishes.dispatchId))?.status).toBe('Acked');
      expect(recorder.ofRun('polite')[0]!.abortReason).toBe('shutdown');
      const handedBack = await store!.loadDispatch(polite.dispatchId);
      expect(handedBack).toMatchObject({ status: 'Queued', attempt_count: 0 });
      expect(handedBack!.available_at).toBeLessThanOrEqual(Date.now());
      // The stubborn executor still runs here: its claim stays (renewed), never handed to another node yet.
      const stubbornExec = recorder.ofRun('stubborn')[0]!;
      expect(stubbornExec.end).toBeNull();
      expect((await store!.loadDispatch(stubborn.dispatchId))?.status).toBe('Claimed');
      await expect(a!.submit({ threadId: 'stop-1' })).rejects.toThrow('mailbox is stopped');

      // Another node picks the handed-back work up at once, and the stubborn one only after it returned.
      recorder.on('polite', behaviours.quick()).on('stubborn', behaviours.quick());
      const other = newMailbox(backend!.distributed ? await backend!.openStore() : store!, recorder, 'other');
      mailboxes.push(other);
      await other.start();
      await loadStatus(store!, polite.dispatchId, 'Acked');
      const done = await loadStatus(store!, stubborn.dispatchId, 'Acked');
      const [first, second] = recorder.ofRun('stubborn');
      expect(second!.consumer).toBe('other');
      expect(second!.startedAt).toBeGreaterThanOrEqual(first!.endedAt!);
      expect(done.attempt_count).toBe(0);
      expect(recorder.ofRun('polite')[1]!.attempt).toBe(1);
      await eventually('the stubborn run to leave node a', () => a!.activeRuns === 0);
      expect(events.filter((e) => e.name === 'retried')).toEqual([]);
    });

    it('runs at most config.concurrency runs at once, work enqueued by another process included; the rest waits', async () => {
      const recorder = new Recorder(behaviours.quick(150));
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { concurrency: 2 });
      expect(a!.config.maxConcurrentHandlers).toBe(2);
      // Enqueued straight through the store, as another process would.
      const now = Date.now();
      for (let t = 0; t < 8; t++) {
        await store!.enqueue(
          queuedDispatch({
            dispatch_id: `cc-${t}`,
            thread_id: `cc-t${t}`,
            run_id: `cc-r${t}`,
            created_at: now,
          }),
        );
      }
      // Beyond the bound a foreground submit queues instead of running at once; it still runs later.
      await eventually('two runs', () => recorder.executions.length >= 2);
      const extra = await a!.submit({ threadId: 'cc-extra', runId: 'cc-extra' });
      expect(extra.status).toBe('Queued');
      for (let t = 0; t < 8; t++) await loadStatus(store!, `cc-${t}`, 'Acked');
      await loadStatus(store!, extra.dispatchId, 'Acked');
      expect(recorder.executions).toHaveLength(9);
      expect(maxOverlap(recorder.executions)).toBe(2);
    });

    it('rolling restarts during one run hand it back each time: no attempt spent, never dead-lettered', async () => {
      const recorder = new Recorder(behaviours.untilAborted(800));
      backend = await openBackend(kind, 'mailbox');
      const store = await backend.openStore();
      const handedBack: string[] = [];
      const failures: string[] = [];
      const restartedNode = async (name: string): Promise<Mailbox> => {
        const m = newMailbox(backend!.distributed ? await backend!.openStore() : store, recorder, name, {
          stopGraceMs: 100,
        });
        mailboxes.push(m);
        m.on('handedBack', (d) => handedBack.push(`${name}:${d.dispatch_id}:${d.attempt_count}`));
        m.on('retried', (d) => failures.push(`retried ${d.dispatch_id}`));
        m.on('deadLettered', (d) => failures.push(`deadLettered ${d.dispatch_id}`));
        await m.start();
        return m;
      };
      const first = await restartedNode('deploy-1');
      const sub = await first.submit({ threadId: 'rolling', runId: 'long-run', maxAttempts: 2 });
      await eventually('run 1 to start', () => recorder.executions.length === 1);
      await first.stop();
      const second = await restartedNode('deploy-2');
      await eventually('run 2 to start', () => recorder.executions.length === 2);
      await second.stop();
      const third = await restartedNode('deploy-3');
      await third.start();
      const done = await loadStatus(store, sub.dispatchId, 'Acked');
      expect(done.attempt_count).toBe(0);
      expect(recorder.executions.map((e) => [e.consumer, e.attempt, e.abortReason])).toEqual([
        ['deploy-1', 1, 'shutdown'],
        ['deploy-2', 1, 'shutdown'],
        ['deploy-3', 1, null],
      ]);
      expect(handedBack).toEqual([`deploy-1:${sub.dispatchId}:0`, `deploy-2:${sub.dispatchId}:0`]);
      expect(failures).toEqual([]);
    });

    it('cancel by run id reaches a run on another node; a cancelled run emits cancelled, even when its executor ignores the signal', async () => {
      const recorder = new Recorder()
        .on('honours', behaviours.untilAborted())
        .on('ignores', behaviours.stubborn(400))
        .on('interrupted', behaviours.untilAborted());
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder);
      const events = collectEvents(a!);
      const honours = await a!.submit({ threadId: 'cr-1', runId: 'honours' });
      const ignores = await a!.submit({ threadId: 'cr-2', runId: 'ignores' });
      await eventually('both runs to start', () => recorder.executions.length === 2);

      // Node b never saw these run ids: it finds the claimed dispatches through the store.
      expect(await b!.cancel('honours')).toBe(true);
      expect(await b!.cancel('ignores')).toBe(true);
      for (const [runId, dispatchId] of [
        ['honours', honours.dispatchId],
        ['ignores', ignores.dispatchId],
      ] as const) {
        const record = await loadStatus(store!, dispatchId, 'Acked');
        expect(record.termination).toEqual({ type: 'cancelled' });
        expect(recorder.ofRun(runId)[0]!.abortReason).toBe('cancel');
        await eventually(`the cancelled event of ${runId}`, () =>
          events.some((e) => e.name === 'cancelled' && e.dispatch.dispatch_id === dispatchId),
        );
        expect(events.some((e) => e.name === 'completed' && e.dispatch.dispatch_id === dispatchId)).toBe(
          false,
        );
      }

      // An interrupt from the other node aborts with `interrupt`, as a local one does.
      const interrupted = await a!.submit({ threadId: 'cr-3', runId: 'interrupted' });
      await eventually('run 3 to start', () => recorder.ofRun('interrupted').length === 1);
      expect((await b!.interrupt('cr-3')).activeCancelled).toBe(true);
      await eventually('run 3 to end', () => recorder.ofRun('interrupted')[0]!.end !== null);
      expect(recorder.ofRun('interrupted')[0]!.abortReason).toBe('interrupt');
      await loadStatus(store!, interrupted.dispatchId, 'Superseded');
      expect(await b!.cancel('no-such-run')).toBe(false);
    });

    it('sendMessages answers at once when the executor does not read its commands: queued, from this node and another', async () => {
      const sunk: QueuedMessages[] = [];
      const recorder = new Recorder().on('deaf', behaviours.untilAborted()).deaf('deaf');
      const {
        stores: [store],
        nodes: [a, b],
      } = await nodes(2, recorder, {}, { messageSink: (d) => void sunk.push(d) });
      const run = await a!.submit({ threadId: 'deaf-thread', runId: 'deaf' });
      await eventually('the deaf run to start', () => recorder.ofRun('deaf').length === 1);
      const msg: Message = { id: 'deaf-m1', role: 'user', content: [{ type: 'text', text: 'hello?' }] };

      for (const [node, id] of [
        [a!, 'deaf-m1'],
        [b!, 'deaf-m2'],
      ] as const) {
        const t0 = Date.now();
        expect(await node.sendMessages('deaf-thread', [{ ...msg, id }])).toBe('queued');
        // Not the 5 s a live request waits for an ack that cannot come.
        expect(Date.now() - t0).toBeLessThan(2_000);
      }
      expect(
        await b!.sendDecision(run.dispatchId, 'call-1', {
          decision_id: 'd1',
          action: 'resume',
          updated_at: 1,
        }),
      ).toBe(false);
      expect(sunk.map((d) => d.dispatchId)).toEqual(['deaf-m1', 'deaf-m2']);
      expect((await store!.loadDispatch('deaf-m1'))?.status).toBe('Queued');
      expect(recorder.ofRun('deaf')[0]!.end).toBeNull();
    });

    it('garbage-collects terminal dispatches older than the TTL', async () => {
      const recorder = new Recorder();
      const {
        stores: [store],
        nodes: [a],
      } = await nodes(1, recorder, { gcIntervalMs: 150, gcTtlMs: 1 });
      const sub = await a!.submitBackground({ threadId: 'gc', runId: 'gc-run' });
      expect(sub.status).toBe('Running');
      await eventually(
        'the acked dispatch to be purged',
        async () => (await store!.loadDispatch(sub.dispatchId)) === null && recorder.executions.length === 1,
      );
    });

    it('validates its input', async () => {
      const recorder = new Recorder();
      const {
        nodes: [a],
      } = await nodes(1, recorder);
      await expect(a!.submit({ threadId: ' ' })).rejects.toMatchObject({ kind: 'Validation' });
      await expect(a!.submitBackground({ threadId: 't', priority: 300 })).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(a!.submitBackground({ threadId: 't', maxAttempts: 0 })).rejects.toMatchObject({
        kind: 'Validation',
      });
      await expect(a!.sendMessages('t', [])).rejects.toMatchObject({ kind: 'Validation' });
      await expect(
        a!.sendMessages('t', [{ role: 'robot', content: [] } as unknown as Message]),
      ).rejects.toMatchObject({ kind: 'Validation' });
      await expect(a!.cancel('')).rejects.toMatchObject({ kind: 'Validation' });
      await expect(a!.interrupt('')).rejects.toMatchObject({ kind: 'Validation' });
    });
  });
}

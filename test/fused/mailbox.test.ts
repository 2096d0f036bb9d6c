/**
 * The Mailbox on a fused store: one `claimAndStart` (or `claimDispatchAndStart`) and one
 * `completeAndClaimNext` per completed run instead of claim, pre-start reads, start, result and ack, and a
 * queued thread's runs chained from one completion to the next; the same final records as on the same
 * store with its fused methods hidden (the sequential path).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FUSED_STORE, isFusedStore } from '../../src/contract/fused.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import type { ExecutorOutcome } from '../../src/mailbox/types.js';
import { BACKENDS, type FusedFixture } from './support.js';

const OWNER_CALLS = [
  'claim',
  'claimDispatch',
  'claimAndStart',
  'claimDispatchAndStart',
  'recordDispatchStart',
  'recordRunResult',
  'ack',
  'completeAndAck',
  'completeAndClaimNext',
  'loadDispatch',
  'currentDispatchEpoch',
];

/** Count the owner-side calls; `hideFused` makes the store look like one without fused operations. */
function counted(store: MailboxStore, calls: string[], hideFused: boolean): MailboxStore {
  return new Proxy(store, {
    get(target, prop) {
      if (hideFused && prop === FUSED_STORE) return undefined;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = (value as (...a: unknown[]) => unknown).bind(target);
      const name = String(prop);
      if (!OWNER_CALLS.includes(name)) return fn;
      return (...a: unknown[]) => {
        calls.push(name);
        return fn(...a);
      };
    },
  });
}

const done = async (): Promise<ExecutorOutcome> => ({ kind: 'completed', response: 'hi' });

describe.each(BACKENDS)('Mailbox on a fused $name store', (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function runOne(
    fx: FusedFixture,
    hideFused: boolean,
    foreground: boolean,
  ): Promise<{ calls: string[]; record: RunDispatch | null; events: string[] }> {
    const calls: string[] = [];
    const store = counted(fx.store, calls, hideFused);
    expect(isFusedStore(store)).toBe(!hideFused);
    const mailbox = new Mailbox({ store, executor: done, consumerId: 'node-1' });
    cleanups.push(async () => void (await mailbox.stop()));
    const events: string[] = [];
    const completed = new Promise<RunDispatch>((resolve) => {
      mailbox.on('claimed', (d) => events.push(`claimed ${d.status} ${String(d.run_status)}`));
      mailbox.on('started', (d) => events.push(`started ${d.status} ${String(d.run_status)}`));
      mailbox.on('completed', (d) => {
        events.push(`completed ${d.status} ${String(d.run_status)}`);
        resolve(d);
      });
    });
    await mailbox.start();
    calls.length = 0;
    const req = { threadId: 'thread-a', dispatchId: 'd-1', runId: 'r-1' };
    const sub = foreground ? await mailbox.submit(req) : await mailbox.submitBackground(req);
    const event = await completed;
    const record = await fx.store.loadDispatch(sub.dispatchId);
    expect(event).toMatchObject({
      status: 'Acked',
      run_status: 'done',
      run_response: 'hi',
      dispatch_instance_id: record?.dispatch_instance_id,
      completed_at: record?.completed_at,
    });
    await mailbox.stop();
    return { calls, record, events };
  }

  for (const foreground of [false, true]) {
    it(`${foreground ? 'submit' : 'submitBackground'}: fused calls, same records and events as sequential`, async () => {
      const a = await backend.open();
      cleanups.push(() => a.cleanup());
      const b = await backend.open();
      cleanups.push(() => b.cleanup());
      const fused = await runOne(a, false, foreground);
      const sequential = await runOne(b, true, foreground);

      const claimCall = foreground ? 'claimDispatchAndStart' : 'claimAndStart';
      // Later claims may follow (the try-next after the run, a signal): all of them fused too.
      expect(fused.calls).toContain(claimCall);
      // The completion also looks for the thread's next dispatch (none here), in the same call.
      expect(fused.calls.filter((c) => c.startsWith('complete'))).toEqual(['completeAndClaimNext']);
      for (const sequentialOnly of [
        'claim',
        'claimDispatch',
        'recordDispatchStart',
        'recordRunResult',
        'ack',
        'currentDispatchEpoch',
      ]) {
        expect(fused.calls).not.toContain(sequentialOnly);
      }
      expect(sequential.calls).toEqual(
        expect.arrayContaining([
          foreground ? 'claimDispatch' : 'claim',
          'recordDispatchStart',
          'recordRunResult',
          'ack',
        ]),
      );
      expect(sequential.calls).not.toContain('completeAndAck');
      expect(sequential.calls).not.toContain('completeAndClaimNext');
      expect(fused.events).toEqual([
        'claimed Claimed null',
        'started Claimed running',
        'completed Acked done',
      ]);
      expect(fused.events).toEqual(sequential.events);
      const shape = (d: RunDispatch | null): unknown =>
        d && {
          status: d.status,
          run_status: d.run_status,
          run_response: d.run_response,
          termination: d.termination,
          claim_token: d.claim_token,
          claimed_by: d.claimed_by,
          attempt_count: d.attempt_count,
          last_error: d.last_error,
        };
      expect(shape(fused.record)).toEqual(shape(sequential.record));
    });
  }

  it("chains a busy thread's queued dispatches: each completion starts the next, no claims between", async () => {
    const fx = await backend.open();
    cleanups.push(() => fx.cleanup());
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const mailbox = new Mailbox({
      store: counted(fx.store, calls, false),
      executor: async (ctx) => {
        if (ctx.dispatch.dispatch_id === 'd-1') await gate;
        return { kind: 'completed', response: ctx.dispatch.dispatch_id };
      },
      consumerId: 'node-1',
    });
    cleanups.push(async () => void (await mailbox.stop()));
    const completed: string[] = [];
    const allDone = new Promise<void>((resolve) => {
      mailbox.on('completed', (d) => {
        completed.push(d.dispatch_id);
        if (completed.length === 3) resolve();
      });
    });
    await mailbox.start();
    calls.length = 0;
    for (const id of ['d-1', 'd-2', 'd-3']) {
      await mailbox.submitBackground({ threadId: 'thread-a', dispatchId: id, runId: `r-${id}` });
    }
    release();
    await allDone;
    await mailbox.stop();
    expect(completed).toEqual(['d-1', 'd-2', 'd-3']);
    const first = calls.indexOf('completeAndClaimNext');
    const last = calls.lastIndexOf('completeAndClaimNext');
    expect(calls.slice(first, last + 1)).toEqual([
      'completeAndClaimNext',
      'completeAndClaimNext',
      'completeAndClaimNext',
    ]);
    for (const id of ['d-1', 'd-2', 'd-3']) {
      expect(await fx.store.loadDispatch(id)).toMatchObject({ status: 'Acked', run_response: id });
    }
  });
});

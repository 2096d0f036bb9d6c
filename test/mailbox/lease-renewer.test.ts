/**
 * Lease renewal (contract.md §13 C) and its stale check: an interrupt past the claim's epoch aborts the run
 * before any renewal, so the claim is released by the run's own settlement after the executor returned, never
 * by a renewal that supersedes it while the executor still runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { MailboxStore } from '../../src/contract/store.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { LeaseRenewer } from '../../src/mailbox/lease-renewer.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import type { RunControl } from '../../src/contract/cancel-requests.js';
import { eventually } from './wait.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function claimed(store: MailboxStore, id: string): Promise<{ token: string; epoch: number }> {
  await store.enqueue(
    queuedDispatch({ dispatch_id: id, thread_id: 't', run_id: `r-${id}`, created_at: Date.now() }),
  );
  const [d] = await store.claim('t', 'node', 1000, Date.now(), 1);
  return { token: d?.claim_token ?? '', epoch: d?.dispatch_epoch ?? -1 };
}

/** A renewer of claim `token` on thread 't' every 20 ms; `events` records what it reported, in order. */
function renewer(store: MailboxStore, id: string, token: string, epoch: number) {
  const events: string[] = [];
  const r = new LeaseRenewer({
    store,
    dispatchId: id,
    claimToken: token,
    intervalMs: 20,
    leaseMs: 1000,
    suspendedLeaseMs: 5000,
    threadId: 't',
    dispatchEpoch: epoch,
    leaseUntil: Date.now() + 1000,
    onLost: () => events.push('lost'),
    onStale: () => events.push('stale'),
    onCancelRequested: () => events.push('cancel'),
    logger: {},
  });
  return { r, events };
}

describe('LeaseRenewer', () => {
  const stores: MemoryMailboxStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  it('extends the lease while the thread keeps the claim epoch', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    stores.push(store);
    const { token, epoch } = await claimed(store, 'd1');
    const before = (await store.loadDispatch('d1'))?.lease_until ?? 0;
    const { r, events } = renewer(store, 'd1', token, epoch);
    r.start();
    await sleep(120);
    r.stop();
    expect(events).toEqual([]);
    expect((await store.loadDispatch('d1'))?.lease_until).toBeGreaterThan(before);
  });

  it('after an interrupt: aborts (stale) without renewing, and leaves the claim to the run', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    stores.push(store);
    const { token, epoch } = await claimed(store, 'd1');
    await store.interrupt('t', Date.now());
    const { r, events } = renewer(store, 'd1', token, epoch);
    r.start();
    await sleep(120);
    r.stop();
    expect(events).toEqual(['stale']);
    // Not superseded by a renewal: still Claimed with its token until the run settles.
    expect(await store.loadDispatch('d1')).toMatchObject({ status: 'Claimed', claim_token: token });
  });

  it('a claim that is gone (acked elsewhere) aborts as lost', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    stores.push(store);
    const { token, epoch } = await claimed(store, 'd1');
    await store.ack('d1', token, Date.now());
    const { r, events } = renewer(store, 'd1', token, epoch);
    r.start();
    await sleep(120);
    r.stop();
    expect(events).toEqual(['lost']);
  });
});

describe('LeaseRenewer: cancel requests (stores with cancel requests)', () => {
  const stores: MemoryMailboxStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  async function setUp(store: MailboxStore = new MemoryMailboxStore({ signals: false })) {
    const memory = store as MemoryMailboxStore;
    stores.push(memory);
    const { token, epoch } = await claimed(memory, 'd1');
    return { memory, token, ...renewer(store, 'd1', token, epoch) };
  }

  const leaseOf = async (store: MailboxStore): Promise<number> =>
    (await store.loadDispatch('d1'))?.lease_until ?? 0;

  it('a request naming the claim aborts once (`cancel`), and the lease is still renewed', async () => {
    const { memory, token, r, events } = await setUp();
    expect(await memory.requestRunCancel('d1', token)).toBe(true);
    r.start();
    await eventually('the cancel', () => events.includes('cancel'));
    const renewed = await leaseOf(memory);
    await eventually('two more renewals', async () => (await leaseOf(memory)) > renewed + 1);
    r.stop();
    expect(events).toEqual(['cancel']);
    expect(await memory.loadDispatch('d1')).toMatchObject({ status: 'Claimed', claim_token: token });
  });

  it('an interrupt wins over a request: stale, not cancel', async () => {
    const { memory, token, r, events } = await setUp();
    await memory.requestRunCancel('d1', token);
    await memory.interrupt('t', Date.now());
    r.start();
    await eventually('the stale abort', () => events.length > 0);
    r.stop();
    expect(events).toEqual(['stale']);
  });

  it('a request for another claim of the thread is ignored', async () => {
    const memory = new MemoryMailboxStore({ signals: false });
    // The thread still holds an earlier claim's request (kept after that claim ended).
    const earlier = new Proxy(memory, {
      get(target, prop) {
        if (prop === 'readRunControl') {
          return async (threadId: string) => ({
            ...(await target.readRunControl(threadId)),
            cancelToken: 'an-earlier-claim',
          });
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { r, events } = await setUp(earlier);
    const before = await leaseOf(memory);
    r.start();
    await eventually('a renewal', async () => (await leaseOf(memory)) > before);
    r.stop();
    expect(events).toEqual([]);
  });

  it('a read answered after stop() reports nothing and renews nothing', async () => {
    const memory = new MemoryMailboxStore({ signals: false });
    let answer!: (control: RunControl) => void;
    let extends_ = 0;
    const held = new Proxy(memory, {
      get(target, prop) {
        if (prop === 'readRunControl') {
          return () => new Promise<RunControl>((resolve) => (answer = resolve));
        }
        if (prop === 'extendLease') {
          extends_++;
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const { token, r, events } = await setUp(held);
    r.start();
    await eventually('the read', () => answer !== undefined);
    r.stop();
    answer({ epoch: 0, cancelToken: token });
    // Let the answer's reactions run.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual([]);
    expect(extends_).toBe(0);
  });
});

describe('Mailbox: a run interrupted behind its back (no live Cancel reaches it)', () => {
  it('releases the thread only after the executor returned', async () => {
    const store = new MemoryMailboxStore({ signals: false });
    let endedAt = 0;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const mailbox = new Mailbox({
      store,
      consumerId: 'node-1',
      config: { leaseMs: 300 },
      executor: async (ctx) => {
        started();
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        // The executor takes a moment to wind down after the abort.
        await sleep(50);
        endedAt = Date.now();
        return { kind: 'completed', response: 'stopped' };
      },
    });
    try {
      await mailbox.start();
      await mailbox.submitBackground({ threadId: 't', dispatchId: 'd1', runId: 'r1' });
      await running;
      // Straight to the store: the Mailbox is not told, as when the interrupt came from another node.
      await store.interrupt('t', Date.now());
      const deadline = Date.now() + 5000;
      let record = await store.loadDispatch('d1');
      while (record?.status === 'Claimed' && Date.now() < deadline) {
        await sleep(10);
        record = await store.loadDispatch('d1');
      }
      expect(record?.status).toBe('Superseded');
      expect(endedAt).toBeGreaterThan(0);
      expect(record?.completed_at ?? 0).toBeGreaterThanOrEqual(endedAt);
    } finally {
      await mailbox.stop();
      await store.close();
    }
  });
});

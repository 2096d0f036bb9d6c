/**
 * Mailbox pieces without a real store: config defaults and validation, backoff formulas, the run inbox, the live
 * forwarder, and the signal-loop policy of contract.md §13 I against a scripted store stub.
 */
import { describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type {
  DispatchSignalEntry,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
  RunDispatch,
} from '../../src/contract/types.js';
import { CommandInbox, deliverLocally } from '../../src/mailbox/command-inbox.js';
import { forwardLiveCommands } from '../../src/mailbox/live-forwarder.js';
import { ActiveRun } from '../../src/mailbox/active-run.js';
import type { AbortReason } from '../../src/mailbox/index.js';
import {
  DEFAULT_MAILBOX_CONFIG,
  Mailbox,
  resolveMailboxConfig,
  retryDelayMs,
  signalNackDelayMs,
} from '../../src/mailbox/index.js';
import { MemoryMailboxStore } from '../../src/memory/index.js';
import { eventually } from './wait.js';

describe('config', () => {
  it('has the defaults of contract.md §10', () => {
    expect(resolveMailboxConfig()).toEqual({
      leaseMs: 30_000,
      suspendedLeaseMs: 600_000,
      leaseRenewalIntervalMs: 10_000,
      sweepIntervalMs: 30_000,
      gcIntervalMs: 60_000,
      gcTtlMs: 86_400_000,
      defaultMaxAttempts: 5,
      defaultRetryDelayMs: 250,
      maxRetryDelayMs: 30_000,
      signalBatchSize: 32,
      signalFetchExpiresMs: 500,
      signalNackBaseDelayMs: 500,
      signalNackMaxDelayMs: 30_000,
      concurrency: 32,
      maxConcurrentHandlers: 32,
      remoteCancelWaitMs: 5_000,
      remoteCancelPollMs: 25,
      stopGraceMs: 10_000,
      idlePollIntervalMs: 1_000,
      liveSubscriptionLingerMs: 2_000,
      epochPollIntervalMs: 250,
    });
    expect(resolveMailboxConfig()).toEqual(DEFAULT_MAILBOX_CONFIG);
  });

  it('takes overrides and derives the renewal interval from a short lease', () => {
    expect(resolveMailboxConfig({ leaseMs: 1_500 }).leaseRenewalIntervalMs).toBe(500);
    expect(resolveMailboxConfig({ leaseMs: 90_000 }).leaseRenewalIntervalMs).toBe(10_000);
    expect(resolveMailboxConfig({ liveSubscriptionLingerMs: 0 }).liveSubscriptionLingerMs).toBe(0);
    expect(resolveMailboxConfig({ epochPollIntervalMs: 0 }).epochPollIntervalMs).toBe(0);
    expect(resolveMailboxConfig({ leaseMs: 2_000, leaseRenewalIntervalMs: 100 }).leaseRenewalIntervalMs).toBe(
      100,
    );
  });

  it.each([
    [{ leaseMs: 0 }, 'config.leaseMs'],
    [{ leaseMs: 1.5 }, 'config.leaseMs'],
    [{ signalBatchSize: 'many' }, 'config.signalBatchSize'],
    [{ leaseRenewalIntervalMs: 30_000 }, 'config.leaseRenewalIntervalMs'],
    [{ defaultRetryDelayMs: 60_000 }, 'config.defaultRetryDelayMs'],
    [{ signalNackBaseDelayMs: 40_000 }, 'config.signalNackBaseDelayMs'],
    [{ lease: 5 }, 'config'],
    [{ stopGraceMs: 2 ** 40 }, 'config.stopGraceMs'],
    [{ liveSubscriptionLingerMs: -1 }, 'config.liveSubscriptionLingerMs'],
    [{ liveSubscriptionLingerMs: 0.5 }, 'config.liveSubscriptionLingerMs'],
    [{ epochPollIntervalMs: -1 }, 'config.epochPollIntervalMs'],
    [{ epochPollIntervalMs: 1.5 }, 'config.epochPollIntervalMs'],
    [{ epochPollIntervalMs: '100' }, 'config.epochPollIntervalMs'],
  ])('rejects %j naming %s', (bad, field) => {
    let caught: unknown;
    try {
      resolveMailboxConfig(bad);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ kind: 'Validation' });
    expect((caught as Error).message).toContain(field);
  });

  it('rejects bad Mailbox options with Validation', () => {
    const store = stubStore({});
    const executor = async () => ({ kind: 'completed' as const });
    expect(() => new Mailbox({ store, executor, config: { leaseMs: -1 } })).toThrow(/config\.leaseMs/);
    expect(() => new Mailbox({ store, executor, consumerId: ' ' })).toThrow(/consumerId/);
    expect(() => new Mailbox({ store, executor: 'nope' as never })).toThrow(/executor/);
    expect(() => new Mailbox({ store: {} as MailboxStore, executor })).toThrow(/store/);
  });
});

describe('backoff', () => {
  it('retries after 250 · 2^min(max(attempt_count − 1, 0), 6), capped', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 20].map((a) => retryDelayMs(a, 250, 30_000))).toEqual([
      250, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000,
    ]);
    expect(retryDelayMs(8, 1_000, 30_000)).toBe(30_000);
  });

  it('nacks blocked signals after 500 ms · 2^min(attempts − 1, 16), capped at 30 s', () => {
    expect([null, 1, 2, 3, 4, 7, 100].map((a) => signalNackDelayMs(a, 500, 30_000))).toEqual([
      500, 500, 1_000, 2_000, 4_000, 30_000, 30_000,
    ]);
  });
});

describe('run inbox', () => {
  it('hands commands to the executor in order and ends on close', async () => {
    const inbox = new CommandInbox(2);
    const seen: LiveRunCommand[] = [];
    const reader = (async () => {
      for await (const entry of inbox) seen.push(entry.command);
    })();
    const receipt = { ack: () => Promise.resolve() };
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(true);
    expect(inbox.offer({ command: { Messages: [] }, receipt })).toBe(true);
    await eventually('both read', () => seen.length === 2);
    inbox.close();
    await reader;
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(false);
    expect(seen).toEqual(['PendingBoundaryWake', { Messages: [] }]);
  });

  it('refuses commands beyond its capacity', () => {
    const inbox = new CommandInbox(1);
    inbox[Symbol.asyncIterator](); // the executor asked for its commands (and reads none yet)
    const receipt = { ack: () => Promise.resolve() };
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(true);
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(false);
  });

  it('refuses every command while the executor does not read them, and answers at once', async () => {
    const inbox = new CommandInbox();
    const receipt = { ack: () => Promise.resolve() };
    expect(inbox.isReading).toBe(false);
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(false);
    const t0 = Date.now();
    expect(await deliverLocally(inbox, 'PendingBoundaryWake', 5_000)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1_000);
    inbox[Symbol.asyncIterator]();
    expect(inbox.isReading).toBe(true);
    expect(inbox.offer({ command: 'PendingBoundaryWake', receipt })).toBe(true);
  });

  it('reports local delivery only once the executor acks', async () => {
    const inbox = new CommandInbox();
    const acking = (async () => {
      for await (const entry of inbox) await entry.receipt.ack();
    })();
    expect(await deliverLocally(inbox, 'PendingBoundaryWake', 1_000)).toBe(true);
    inbox.close();
    await acking;

    const ignored = new CommandInbox();
    expect(await deliverLocally(ignored, 'PendingBoundaryWake', 50)).toBe(false);
    const closing = deliverLocally(ignored, 'PendingBoundaryWake', 5_000);
    ignored.close();
    expect(await closing).toBe(false);
  });
});

class FakeStream implements LiveRunCommandStream {
  readonly acked: LiveRunCommand[] = [];
  readonly rejected: LiveRunCommand[] = [];
  closed = false;
  constructor(private readonly commands: LiveRunCommand[]) {}
  async *[Symbol.asyncIterator](): AsyncIterator<LiveRunCommandEntry> {
    for (const command of this.commands) {
      yield {
        command,
        receipt: {
          ack: async () => void this.acked.push(command),
          reject: async () => void this.rejected.push(command),
        },
      };
    }
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('live forwarder', () => {
  it('forwards steering commands to the inbox and aborts on Cancel (acked)', async () => {
    const stream = new FakeStream([{ Messages: [] }, 'PendingBoundaryWake', 'Cancel', { Decision: [] }]);
    const inbox = new CommandInbox();
    let cancelled = 0;
    let aborted = 0;
    const onCancel = async (): Promise<boolean> => {
      cancelled++;
      return true;
    };
    await forwardLiveCommands(stream, inbox, onCancel, () => aborted++, {}, {});
    expect(cancelled).toBe(1);
    expect(aborted).toBe(0);
    expect(stream.acked).toEqual(['Cancel']);
    const forwarded: LiveRunCommand[] = [];
    inbox.close();
    // The executor reads its commands (asked for them before they arrive).
    const inbox2 = new CommandInbox();
    const reader = (async () => {
      for await (const e of inbox2) forwarded.push(e.command);
    })();
    await forwardLiveCommands(
      new FakeStream([{ Messages: [] }, 'PendingBoundaryWake']),
      inbox2,
      onCancel,
      () => aborted++,
      {},
      {},
    );
    await eventually('two forwarded', () => forwarded.length === 2);
    inbox2.close();
    await reader;
    expect(forwarded).toEqual([{ Messages: [] }, 'PendingBoundaryWake']);
  });

  it('fails closed on a command variant it does not know: abort, no ack', async () => {
    const stream = new FakeStream([{ Teleport: [] } as unknown as LiveRunCommand, { Messages: [] }]);
    let aborted = 0;
    await forwardLiveCommands(
      stream,
      new CommandInbox(),
      async () => true,
      () => aborted++,
      {},
      {},
    );
    expect(aborted).toBe(1);
    expect(stream.acked).toEqual([]);
  });

  it('an ActiveRun takes a live Cancel while executing, and refuses it once its executor returned', async () => {
    const claimedRecord = {
      ...queuedDispatch({ dispatch_id: 'd', thread_id: 't', run_id: 'r', created_at: 1 }),
    };
    claimedRecord.status = 'Claimed';
    claimedRecord.claim_token = 'tok';
    // Executing: aborted with `cancel`, acked.
    const executing = new ActiveRun(claimedRecord, {});
    executing.phase = 'executing';
    const first = new FakeStream(['Cancel']);
    executing.attachLiveStream(first);
    await eventually('the ack', () => first.acked.length === 1);
    expect(executing.abortReason).toBe('cancel');
    // The executor returns while the Cancel's reason is being read: not aborted, rejected.
    let answer!: (reason: AbortReason) => void;
    const returning = new ActiveRun(claimedRecord, {}, () => new Promise((r) => (answer = r)));
    returning.phase = 'executing';
    const second = new FakeStream(['Cancel']);
    returning.attachLiveStream(second);
    await eventually('the reason read', () => answer !== undefined);
    returning.phase = 'settling';
    answer('cancel');
    await eventually('the rejection', () => second.rejected.length === 1);
    expect(second.acked).toEqual([]);
    expect(returning.aborted).toBe(false);
  });

  it('rejects a Cancel that came too late (the executor had returned): not acked, forwarding ends', async () => {
    const stream = new FakeStream(['Cancel', { Messages: [] }]);
    const inbox = new CommandInbox();
    await forwardLiveCommands(
      stream,
      inbox,
      async () => false,
      () => undefined,
      {},
      {},
    );
    expect(stream.acked).toEqual([]);
    expect(stream.rejected).toEqual(['Cancel']);
  });
});

/** A MailboxStore whose unlisted methods throw: the test says exactly which calls it expects. */
function stubStore(methods: Partial<Record<keyof MailboxStore, unknown>>): MailboxStore {
  return new Proxy(methods, {
    get(target, prop) {
      if (prop in target) return target[prop as keyof MailboxStore];
      if (prop === 'then') return undefined;
      return () => {
        throw new Error(`unexpected store call: ${String(prop)}`);
      };
    },
  }) as MailboxStore;
}

describe('signal loop policy (§13 I)', () => {
  interface Settled {
    what: string;
    delay?: number;
  }

  function signal(
    threadId: string,
    dispatchId: string,
    attempts: number | null,
    log: Settled[],
  ): DispatchSignalEntry {
    return {
      thread_id: threadId,
      dispatch_id: dispatchId,
      receipt: {
        redeliveryAttempts: () => attempts,
        ack: async () => void log.push({ what: `ack ${dispatchId}` }),
        nack: async () => void log.push({ what: `nack ${dispatchId}` }),
        nackWithDelay: async (delay: number) => void log.push({ what: `delay ${dispatchId}`, delay }),
      },
    };
  }

  /**
   * Run a Mailbox on a stub store that hands out `batch` once, with `claim` and `loadDispatch` as given,
   * until `settled` holds `count` settlements; answers them as `{what: delay}` (null for no delay).
   */
  async function settleBatch(
    batch: DispatchSignalEntry[],
    settled: Settled[],
    claim: (threadId: string) => Promise<RunDispatch[]>,
    loadDispatch: (id: string) => Promise<RunDispatch | null>,
  ): Promise<Record<string, number | null>> {
    const batches = [batch];
    const store = stubStore({
      supportsDispatchSignals: () => true,
      reclaimExpiredLeases: async () => [],
      queuedThreadIds: async () => [],
      pullDispatchSignals: async () => {
        const next = batches.shift();
        if (next) return next;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return [];
      },
      claim,
      loadDispatch,
    });
    const mailbox = new Mailbox({ store, executor: async () => ({ kind: 'completed' }), consumerId: 'n' });
    await mailbox.start();
    await eventually(`${batch.length} settlements`, () => settled.length === batch.length);
    await mailbox.stop();
    return Object.fromEntries(settled.map((s) => [s.what, s.delay ?? null]));
  }

  it('acks, nacks or nacks with backoff by the outcome of the claim', async () => {
    const settled: Settled[] = [];
    const now = Date.now();
    const queuedAvailable = queuedDispatch({
      dispatch_id: 'd-blocked',
      thread_id: 't-blocked',
      run_id: 'r',
      created_at: now - 1000,
    });
    const queuedLater: RunDispatch = {
      ...queuedDispatch({ dispatch_id: 'd-later', thread_id: 't-later', run_id: 'r', created_at: now }),
      available_at: now + 60_000,
    };
    const byWhat = await settleBatch(
      [
        signal('t-blocked', 'd-blocked', 3, settled),
        signal('t-later', 'd-later', 1, settled),
        signal('t-gone', 'd-gone', null, settled),
        signal('t-error', 'd-error', 1, settled),
        signal('t-loaderr', 'd-loaderr', 1, settled),
      ],
      settled,
      async (threadId) => {
        if (threadId === 't-error') throw new Error('redis down');
        return [];
      },
      async (id) => {
        if (id === 'd-loaderr') throw new Error('read failed');
        return { 'd-blocked': queuedAvailable, 'd-later': queuedLater }[id] ?? null;
      },
    );
    expect(byWhat).toEqual({
      'delay d-blocked': 2_000, // Queued and available but not claimable: blocked elsewhere; attempts 3 → 2 s
      'ack d-later': null, // not yet available: its own wake-up will come
      'ack d-gone': null,
      'nack d-error': null, // the claim failed: redeliver now
      'nack d-loaderr': null,
    });
  });

  it('redelivers a signal whose claim or re-read failed at once, and a redelivery that fails again after 250 ms', async () => {
    const settled: Settled[] = [];
    const byWhat = await settleBatch(
      [
        signal('t-first', 'd-first', 1, settled),
        signal('t-again', 'd-again', 4, settled),
        signal('t-unknown', 'd-unknown', null, settled),
        signal('t-loaderr', 'd-loaderr', 2, settled),
      ],
      settled,
      async (threadId) => {
        if (threadId !== 't-loaderr') throw new Error('redis down');
        return [];
      },
      async () => {
        throw new Error('read failed');
      },
    );
    expect(byWhat).toEqual({
      'nack d-first': null, // first delivery: redeliver now (upstream's policy)
      'delay d-again': 250, // it failed before: pause, so a failing store is not a hot loop
      'nack d-unknown': null, // the transport cannot tell: treated as a first delivery
      'delay d-loaderr': 250,
    });
  });

  it('a store whose claims keep failing does not hold the event loop, and its retries are paced', async () => {
    const store = new MemoryMailboxStore();
    let claims = 0;
    const failing = store as unknown as Record<string, unknown>;
    for (const method of ['claim', 'claimAndStart']) {
      const real = (failing[method] as (...a: unknown[]) => Promise<unknown>).bind(store);
      failing[method] = async (...a: unknown[]) => {
        claims++;
        // Recovers after 10 000 failures, so a regression (a loop that never yields) ends and fails below
        // instead of hanging the test worker, whose own timeout is a timer too.
        if (claims > 10_000) return real(...a);
        throw StorageError.io('store down');
      };
    }
    const mailbox = new Mailbox({
      store,
      consumerId: 'n',
      executor: async () => ({ kind: 'completed' }),
      logger: {},
    });
    await mailbox.start();
    try {
      const t0 = Date.now();
      await store.enqueue(
        queuedDispatch({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: Date.now() }),
      );
      await eventually('the first claim', () => claims > 0);
      // Before the pause, the in-memory transport's redeliveries ran as one chain of promise callbacks: no
      // timer fired until the store recovered (here after 10 000 failed claims).
      await new Promise((resolve) => setTimeout(resolve, 500));
      const elapsedMs = Date.now() - t0;
      // One retry per 250 ms after the first redelivery; a loose bound that scales with the time taken.
      expect(claims).toBeLessThanOrEqual(5 + Math.ceil(elapsedMs / 100));
    } finally {
      await mailbox.stop();
      await store.close();
    }
  });
});

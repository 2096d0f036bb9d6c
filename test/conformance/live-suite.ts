/**
 * Live-channel conformance (contract.md §7, design.md §3 item 4) for stores with a live path: the memory store
 * now, Redis + NATS later. Delivery is request/ack: `Delivered` only after the consumer acked the receipt,
 * `NoSubscriber` otherwise; routing is exact per thread or per run target, whatever characters the ids hold.
 *
 * Timing is lenient: a store may take up to its request timeout (NATS: 5 s) to report a never-acked command,
 * so that case runs only when `ackTimeoutMs` is given.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MailboxStore } from '../../src/contract/store.js';
import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../../src/contract/types.js';
import type { MakeStore, StoreFixture } from './suite.js';

export interface LiveConformanceOptions {
  /** The store's ack timeout; enables the "received but never acked → NoSubscriber" case. */
  ackTimeoutMs?: number;
}

/** How long to wait for something that should happen (well above any store's request timeout). */
const ARRIVAL_MS = 8000;
/** How long to watch for something that must not happen. */
const QUIET_MS = 300;
/** "Quickly": no listener must be detected without waiting for a request timeout. */
const NO_LISTENER_MS = 2500;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Buffers a stream's entries so tests can await the next one with a timeout. */
class Inbox {
  private readonly queue: LiveRunCommandEntry[] = [];
  private readonly waiters = new Set<(entry: LiveRunCommandEntry | null) => void>();
  private finished = false;
  failure: unknown = null;
  readonly done: Promise<void>;

  constructor(readonly stream: LiveRunCommandStream) {
    this.done = this.pump();
  }

  get ended(): boolean {
    return this.finished;
  }

  get buffered(): number {
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    try {
      for await (const entry of this.stream) {
        const [waiter] = this.waiters;
        if (waiter) {
          this.waiters.delete(waiter);
          waiter(entry);
        } else {
          this.queue.push(entry);
        }
      }
    } catch (err) {
      this.failure = err;
    } finally {
      this.finished = true;
      for (const waiter of this.waiters) waiter(null);
      this.waiters.clear();
    }
  }

  /** The next entry, or null when the stream ended or nothing arrived within `timeoutMs`. */
  next(timeoutMs = ARRIVAL_MS): Promise<LiveRunCommandEntry | null> {
    const entry = this.queue.shift();
    if (entry) return Promise.resolve(entry);
    if (this.finished) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = (e: LiveRunCommandEntry | null): void => {
        clearTimeout(timer);
        resolve(e);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve(null);
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}

/** A consumer that acks everything it receives and records the commands. */
class Acker {
  readonly received: LiveRunCommand[] = [];
  failure: unknown = null;
  readonly done: Promise<void>;

  constructor(readonly stream: LiveRunCommandStream) {
    this.done = (async () => {
      try {
        for await (const entry of stream) {
          this.received.push(entry.command);
          await entry.receipt.ack();
        }
      } catch (err) {
        this.failure = err;
      }
    })();
  }
}

const say = (text: string): LiveRunCommand => ({
  Messages: [{ id: `m-${text}`, role: 'user', content: [{ type: 'text', text }] }],
});

const textOf = (command: LiveRunCommand): string | null => {
  if (typeof command === 'string' || !('Messages' in command)) return null;
  const block = command.Messages[0]?.content[0];
  return block && block.type === 'text' ? block.text : null;
};

export const ALL_VARIANTS: LiveRunCommand[] = [
  {
    Messages: [
      { id: 'm1', role: 'user', content: [{ type: 'text', text: 'hi ünïcødé 🚀 "quoted" \\ back' }] },
      {
        id: 'm2',
        role: 'assistant',
        content: [{ type: 'text', text: 'Searching' }],
        tool_calls: [
          { id: 'call_1', name: 'search', arguments: { q: 'x', n: 3, nested: [1, null, true, 'z'] } },
        ],
      },
      {
        id: 'm3',
        role: 'tool',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: 'result' }] },
        ],
        tool_call_id: 'call_1',
      },
      {
        id: 'm4',
        role: 'system',
        content: [
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' }, title: 'A' },
          { type: 'tool_use', id: 'tu1', name: 'calc', input: { expr: '1+1' } },
          { type: 'thinking', thinking: 'hmm' },
        ],
        visibility: 'internal',
        metadata: {
          run_id: 'r1',
          step_index: 2,
          sender_agent_id: 'agent-b',
          compaction: { from_seq: 1, to_seq: 9 },
        },
      },
    ],
  },
  'PendingBoundaryWake',
  'Cancel',
  {
    Decision: [
      [
        'call_1',
        {
          decision_id: 'd1',
          action: 'resume',
          result: { approved: true },
          reason: 'user approved',
          updated_at: 1718000000000,
        },
      ],
      ['call_2', { decision_id: 'd2', action: 'cancel', updated_at: 0 }],
    ],
  },
];

/** Ids that break naive subject or key building. */
const AWKWARD_IDS = [
  'a',
  'a.b',
  'a.*',
  'a.>',
  '*',
  '>',
  '.',
  'a..b',
  'a b',
  ' a',
  'a:b',
  'scope:6:tenant:thread-1',
  'h61',
  'thread-ü',
  '线程',
  '🚀',
  'tab\tnewline\n',
];

export function describeLiveConformance(
  name: string,
  makeStore: MakeStore,
  options: LiveConformanceOptions = {},
): void {
  describe(`MailboxStore live conformance: ${name}`, () => {
    let fixture: StoreFixture | null = null;
    let streams: LiveRunCommandStream[] = [];

    beforeEach(async () => {
      fixture = await makeStore();
    });
    afterEach(async () => {
      const open = streams;
      streams = [];
      await Promise.allSettled(open.map((s) => s.close()));
      const f = fixture;
      fixture = null;
      if (f) await f.cleanup();
    });

    const store = (): MailboxStore => {
      if (!fixture) throw new Error('no store: makeStore did not run');
      return fixture.store;
    };

    async function open(target: string | LiveRunTarget): Promise<LiveRunCommandStream> {
      const stream =
        typeof target === 'string'
          ? await store().openLiveChannel(target)
          : await store().openLiveChannelFor(target);
      streams.push(stream);
      return stream;
    }

    const inbox = async (target: string | LiveRunTarget): Promise<Inbox> => new Inbox(await open(target));
    const acker = async (target: string | LiveRunTarget): Promise<Acker> => new Acker(await open(target));

    /** Track whether a promise settled, without awaiting it. */
    function watch<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
      let done = false;
      const promise = p.finally(() => {
        done = true;
      });
      return { settled: () => done, promise };
    }

    it('deliver_live resolves Delivered only after the receipt is acked', async () => {
      const box = await inbox('t-live');
      const delivery = watch(store().deliverLive('t-live', 'Cancel'));
      const entry = await box.next();
      expect(entry?.command).toBe('Cancel');
      await sleep(100);
      expect(delivery.settled()).toBe(false);
      await entry?.receipt.ack();
      expect(await delivery.promise).toBe('Delivered');
      await entry?.receipt.ack(); // idempotent
    });

    it('deliver_live_to resolves Delivered only after the receipt is acked', async () => {
      const target = { thread_id: 't-live-to', run_id: 'r1', dispatch_id: 'd1' };
      const box = await inbox(target);
      const delivery = watch(store().deliverLiveTo(target, 'PendingBoundaryWake'));
      const entry = await box.next();
      expect(entry?.command).toBe('PendingBoundaryWake');
      await sleep(100);
      expect(delivery.settled()).toBe(false);
      await entry?.receipt.ack();
      expect(await delivery.promise).toBe('Delivered');
    });

    it('NoSubscriber with no listener, quickly (thread-level and targeted)', async () => {
      let start = Date.now();
      expect(await store().deliverLive('t-nobody', 'Cancel')).toBe('NoSubscriber');
      expect(Date.now() - start).toBeLessThan(NO_LISTENER_MS);
      start = Date.now();
      expect(
        await store().deliverLiveTo({ thread_id: 't-nobody', run_id: 'r1', dispatch_id: 'd1' }, say('x')),
      ).toBe('NoSubscriber');
      expect(await store().deliverLiveTo({ thread_id: 't-nobody', run_id: 'r1' }, say('x'))).toBe(
        'NoSubscriber',
      );
      expect(Date.now() - start).toBeLessThan(2 * NO_LISTENER_MS);
    });

    it('a closed subscriber → NoSubscriber, and its stream ends', async () => {
      const box = await inbox('t-closed');
      await box.stream.close();
      await box.done;
      expect(box.ended).toBe(true);
      expect(box.failure).toBeNull();
      expect(await store().deliverLive('t-closed', 'Cancel')).toBe('NoSubscriber');
      await box.stream.close(); // idempotent

      const target = { thread_id: 't-closed', run_id: 'r1', dispatch_id: 'd1' };
      const targeted = await inbox(target);
      await targeted.stream.close();
      await targeted.done;
      expect(await store().deliverLiveTo(target, 'Cancel')).toBe('NoSubscriber');
    });

    it.runIf(options.ackTimeoutMs !== undefined)(
      'a command received but never acked → NoSubscriber after the ack timeout',
      async () => {
        const ackTimeoutMs = options.ackTimeoutMs ?? 0;
        const box = await inbox('t-unacked');
        const start = Date.now();
        const delivery = store().deliverLive('t-unacked', say('ignored'));
        const entry = await box.next();
        expect(entry).not.toBeNull();
        expect(await delivery).toBe('NoSubscriber');
        const elapsed = Date.now() - start;
        expect(elapsed).toBeGreaterThanOrEqual(ackTimeoutMs * 0.8);
        expect(elapsed).toBeLessThan(ackTimeoutMs + 5000);
        await entry?.receipt.ack(); // too late: must not throw
      },
      30_000,
    );

    it('routing is exact: thread-level vs targeted vs run-only, no cross-talk', async () => {
      const thread = await acker('t-route');
      const withDispatch = await acker({ thread_id: 't-route', run_id: 'r1', dispatch_id: 'd1' });
      const runOnly = await acker({ thread_id: 't-route', run_id: 'r2' });
      const other = await acker('t-route-other');

      expect(await store().deliverLive('t-route', say('thread'))).toBe('Delivered');
      expect(
        await store().deliverLiveTo({ thread_id: 't-route', run_id: 'r1', dispatch_id: 'd1' }, say('d1')),
      ).toBe('Delivered');
      expect(await store().deliverLiveTo({ thread_id: 't-route', run_id: 'r2' }, say('r2'))).toBe(
        'Delivered',
      );
      expect(
        await store().deliverLiveTo(
          { thread_id: 't-route', run_id: 'r2', dispatch_id: null },
          say('r2-null'),
        ),
      ).toBe('Delivered');

      const misses: [string, Promise<LiveDeliveryOutcome>][] = [
        [
          'run without the subscriber’s dispatch',
          store().deliverLiveTo({ thread_id: 't-route', run_id: 'r1' }, say('x')),
        ],
        [
          'run-only subscriber, target with a dispatch',
          store().deliverLiveTo({ thread_id: 't-route', run_id: 'r2', dispatch_id: 'd9' }, say('x')),
        ],
        [
          'other dispatch of the run',
          store().deliverLiveTo({ thread_id: 't-route', run_id: 'r1', dispatch_id: 'd2' }, say('x')),
        ],
        [
          'other run',
          store().deliverLiveTo({ thread_id: 't-route', run_id: 'r9', dispatch_id: 'd1' }, say('x')),
        ],
        [
          'other thread, same run',
          store().deliverLiveTo({ thread_id: 't-other', run_id: 'r1', dispatch_id: 'd1' }, say('x')),
        ],
        ['thread-level to an unknown thread', store().deliverLive('t-route-unknown', say('x'))],
        ['thread id equal to a run id', store().deliverLive('r1', say('x'))],
      ];
      for (const [label, outcome] of misses) expect(await outcome, label).toBe('NoSubscriber');

      await sleep(QUIET_MS);
      expect(thread.received.map(textOf)).toEqual(['thread']);
      expect(withDispatch.received.map(textOf)).toEqual(['d1']);
      expect(runOnly.received.map(textOf)).toEqual(['r2', 'r2-null']);
      expect(other.received).toEqual([]);
    });

    it('a stale run/dispatch subscriber of the same thread never receives the newer target’s command', async () => {
      const stale = await acker({ thread_id: 't-gen', run_id: 'run-1', dispatch_id: 'disp-1' });
      const newer = { thread_id: 't-gen', run_id: 'run-2', dispatch_id: 'disp-2' };
      expect(await store().deliverLiveTo(newer, 'Cancel')).toBe('NoSubscriber');
      const current = await acker(newer);
      expect(await store().deliverLiveTo(newer, 'Cancel')).toBe('Delivered');
      expect(await store().deliverLiveTo({ ...newer, run_id: 'run-1' }, 'Cancel')).toBe('NoSubscriber');
      await sleep(QUIET_MS);
      expect(stale.received).toEqual([]);
      expect(current.received).toEqual(['Cancel']);
    });

    it("ids with '.', '*', '>', spaces, ':' and non-ASCII route exactly (thread-level)", async () => {
      const boxes = new Map<string, Acker>();
      for (const id of AWKWARD_IDS) boxes.set(id, await acker(id));
      for (const id of AWKWARD_IDS) {
        expect(await store().deliverLive(id, say(`to ${id}`)), JSON.stringify(id)).toBe('Delivered');
      }
      for (const id of ['b', 'a.c', 'x.>', 'a .b', '线', '🚀🚀', 'A']) {
        expect(await store().deliverLive(id, say('nobody')), JSON.stringify(id)).toBe('NoSubscriber');
      }
      await sleep(QUIET_MS);
      for (const [id, box] of boxes)
        expect(box.received.map(textOf), JSON.stringify(id)).toEqual([`to ${id}`]);
    });

    it("ids with '.', '*', '>', spaces, ':' and non-ASCII route exactly (targeted)", async () => {
      const targetOf = (id: string): LiveRunTarget => ({
        thread_id: id,
        run_id: `${id}.run *`,
        dispatch_id: `> ${id}`,
      });
      const boxes = new Map<string, Acker>();
      for (const id of AWKWARD_IDS) boxes.set(id, await acker(targetOf(id)));
      for (const id of AWKWARD_IDS) {
        expect(await store().deliverLiveTo(targetOf(id), say(`to ${id}`)), JSON.stringify(id)).toBe(
          'Delivered',
        );
        // Same ids shuffled between the fields must not match.
        const swapped = { thread_id: `${id}.run *`, run_id: id, dispatch_id: `> ${id}` };
        expect(await store().deliverLiveTo(swapped, say('nobody')), JSON.stringify(id)).toBe('NoSubscriber');
      }
      await sleep(QUIET_MS);
      for (const [id, box] of boxes)
        expect(box.received.map(textOf), JSON.stringify(id)).toEqual([`to ${id}`]);
    });

    it('all four LiveRunCommand variants arrive intact and in order', async () => {
      const target = { thread_id: 't-variants', run_id: 'r1', dispatch_id: 'd1' };
      const box = await inbox(target);
      // Issue all four before acking any, so order is the channel's, not the caller's awaits.
      const deliveries = ALL_VARIANTS.map((command) => store().deliverLiveTo(target, command));
      const entries: LiveRunCommandEntry[] = [];
      for (let i = 0; i < ALL_VARIANTS.length; i++) {
        const entry = await box.next();
        if (!entry) throw new Error(`command ${i} did not arrive`);
        entries.push(entry);
      }
      expect(entries.map((e) => e.command)).toEqual(ALL_VARIANTS);
      await Promise.all(entries.map((e) => e.receipt.ack()));
      expect(await Promise.all(deliveries)).toEqual(['Delivered', 'Delivered', 'Delivered', 'Delivered']);
    });

    it('order is preserved for one subscriber over a sequence of deliveries', async () => {
      const box = await acker('t-order');
      for (let i = 0; i < 20; i++)
        expect(await store().deliverLive('t-order', say(`n${i}`))).toBe('Delivered');
      expect(box.received.map(textOf)).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
    });

    it('many concurrent deliveries to one subscriber all arrive exactly once', async () => {
      const box = await acker('t-burst');
      const outcomes = await Promise.all(
        Array.from({ length: 25 }, (_, i) => store().deliverLive('t-burst', say(`b${i}`))),
      );
      expect(outcomes.every((o) => o === 'Delivered')).toBe(true);
      expect(box.received.map(textOf).sort()).toEqual(Array.from({ length: 25 }, (_, i) => `b${i}`).sort());
    });

    it('different threads are isolated when delivering concurrently', async () => {
      const a = await acker('t-iso-a');
      const b = await acker('t-iso-b');
      const outcomes = await Promise.all([
        store().deliverLive('t-iso-a', say('a1')),
        store().deliverLive('t-iso-b', say('b1')),
        store().deliverLive('t-iso-a', say('a2')),
        store().deliverLive('t-iso-b', say('b2')),
      ]);
      expect(outcomes).toEqual(['Delivered', 'Delivered', 'Delivered', 'Delivered']);
      expect(a.received.map(textOf).sort()).toEqual(['a1', 'a2']);
      expect(b.received.map(textOf).sort()).toEqual(['b1', 'b2']);
    });
  });
}

/**
 * In-process dispatch signals with JetStream work-queue semantics:
 * every signal goes to exactly one puller; a delivered signal stays "in flight" until its receipt acks it;
 * `nack` redelivers at once, `nackWithDelay(ms)` no earlier than `ms` from now, and a signal nobody settled
 * within the ack wait is redelivered. `redeliveryAttempts()` is the delivery count (1 on first delivery).
 *
 * Bounded memory: at most one undelivered signal per dispatch is kept (a new publish for a dispatch that
 * already has one waiting only makes that one deliverable now), and the store discards the waiting signal
 * of a dispatch that became terminal or was purged. Waiting pulls are woken by publishes or by one timer
 * (never a poll), and the redelivery timer is unref'd.
 */
import { StorageError } from '../contract/errors.js';
import type { DispatchSignalReceipt } from '../contract/types.js';
import type { RawSignal, SignalRef, SignalTransport } from '../signals/transport.js';
import { SortedList } from './sorted-list.js';

export const DEFAULT_SIGNAL_ACK_WAIT_MS = 30_000;
/** setTimeout's largest delay; longer waits are re-armed when the timer fires. */
const MAX_TIMER_MS = 2_147_483_647;

export interface MemorySignalQueueOptions {
  /** A delivered signal not acked or nacked within this is redelivered (default 30 000 ms). */
  ackWaitMs?: number;
}

type MessageState = 'ready' | 'delayed' | 'inflight' | 'gone';

interface Message {
  readonly seq: number;
  readonly ref: SignalRef;
  state: MessageState;
  /** Deliveries so far. */
  deliveries: number;
  /** Bumped per delivery: receipts of an earlier delivery are no-ops. */
  generation: number;
  visibleAt: number;
  deadline: number;
  prev: Message | null;
  next: Message | null;
}

interface Waiter {
  max: number;
  resolve: (signals: RawSignal[]) => void;
  timer: ReturnType<typeof setTimeout>;
}

function compareVisibility(a: Message, b: Message): number {
  return a.visibleAt - b.visibleAt || a.seq - b.seq;
}

function delayArg(delayMs: unknown): number {
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
    throw StorageError.validation('delay_ms must be a non-negative finite number');
  }
  return Math.ceil(delayMs);
}

export class MemorySignalQueue implements SignalTransport {
  readonly kind = 'memory' as const;
  readonly #ackWaitMs: number;
  #seq = 0;
  #head: Message | null = null;
  #tail: Message | null = null;
  #readyCount = 0;
  readonly #delayed = new SortedList<Message>(compareVisibility);
  /** Delivered, unsettled messages in delivery order (the ack wait is constant, so deadlines ascend). */
  readonly #inflight = new Map<number, Message>();
  /** The undelivered (ready or delayed) message of each dispatch. */
  readonly #pending = new Map<string, Message>();
  #waiters: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(options: MemorySignalQueueOptions = {}) {
    this.#ackWaitMs = options.ackWaitMs ?? DEFAULT_SIGNAL_ACK_WAIT_MS;
  }

  /** Undelivered signals (ready or delayed). */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Delivered signals not settled yet. */
  get inflightCount(): number {
    return this.#inflight.size;
  }

  async publish(signals: readonly SignalRef[]): Promise<void> {
    this.publishNow(signals);
  }

  /** Synchronous publish, so a store write and its signal happen in one step. */
  publishNow(signals: readonly SignalRef[]): void {
    if (this.#closed) return;
    for (const { thread_id, dispatch_id } of signals) {
      const waiting = this.#pending.get(dispatch_id);
      if (waiting === undefined) {
        const m: Message = {
          seq: ++this.#seq,
          ref: { thread_id, dispatch_id },
          state: 'ready',
          deliveries: 0,
          generation: 0,
          visibleAt: 0,
          deadline: 0,
          prev: null,
          next: null,
        };
        this.#pending.set(dispatch_id, m);
        this.#pushReady(m);
      } else if (waiting.state === 'delayed') {
        this.#delayed.delete(waiting);
        this.#pushReady(waiting);
      }
    }
    this.#serve();
    this.#arm();
  }

  /** Drop the undelivered signal of each dispatch (it became terminal or was purged). */
  discard(dispatchIds: Iterable<string>): void {
    for (const id of dispatchIds) {
      const m = this.#pending.get(id);
      if (m === undefined) continue;
      this.#pending.delete(id);
      if (m.state === 'ready') this.#unlinkReady(m);
      else if (m.state === 'delayed') this.#delayed.delete(m);
      m.state = 'gone';
    }
  }

  pull(max: number, expiresMs: number): Promise<RawSignal[]> {
    if (this.#closed || max <= 0) return Promise.resolve([]);
    this.#settleDue(Date.now());
    if (this.#readyCount > 0 || expiresMs <= 0) {
      const taken = this.#take(max);
      this.#arm();
      return Promise.resolve(taken);
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        max,
        resolve,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve([]);
        }, expiresMs),
      };
      this.#waiters.push(waiter);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve([]);
    }
    this.#head = this.#tail = null;
    this.#readyCount = 0;
    this.#delayed.clear();
    this.#inflight.clear();
    this.#pending.clear();
  }

  /**
   * Settle a delivery: `delayMs` null = ack, 0 = nack, > 0 = nack with delay. Receipts of an earlier
   * delivery, or of a message already settled, change nothing.
   */
  #settle(m: Message, generation: number, delayMs: number | null): void {
    if (this.#closed || m.state !== 'inflight' || m.generation !== generation) return;
    this.#inflight.delete(m.seq);
    if (delayMs === null) {
      m.state = 'gone';
      return;
    }
    this.#requeue(m, delayMs, Date.now());
    this.#serve();
    this.#arm();
  }

  #requeue(m: Message, delayMs: number, now: number): void {
    const id = m.ref.dispatch_id;
    const other = this.#pending.get(id);
    if (other !== undefined) {
      // Already signalled again: keep that one (with the higher delivery count) and drop this one.
      other.deliveries = Math.max(other.deliveries, m.deliveries);
      m.state = 'gone';
      if (delayMs === 0 && other.state === 'delayed') {
        this.#delayed.delete(other);
        this.#pushReady(other);
      }
      return;
    }
    this.#pending.set(id, m);
    if (delayMs === 0) {
      this.#pushReady(m);
    } else {
      m.state = 'delayed';
      m.visibleAt = now + delayMs;
      this.#delayed.add(m);
    }
  }

  /** Make due delayed messages ready and redeliver messages whose ack wait ran out. */
  #settleDue(now: number): void {
    for (const m of this.#delayed.takeWhile((d) => d.visibleAt <= now)) {
      this.#delayed.delete(m);
      this.#pushReady(m);
    }
    for (const m of this.#inflight.values()) {
      if (m.deadline > now) break;
      this.#inflight.delete(m.seq);
      this.#requeue(m, 0, now);
    }
  }

  /** Hand ready messages to waiting pulls, oldest pull first. */
  #serve(): void {
    while (this.#waiters.length > 0 && this.#readyCount > 0) {
      const w = this.#waiters.shift() as Waiter;
      clearTimeout(w.timer);
      w.resolve(this.#take(w.max));
    }
  }

  #take(max: number): RawSignal[] {
    const out: RawSignal[] = [];
    const now = Date.now();
    while (out.length < max && this.#head !== null) {
      const m = this.#head;
      this.#unlinkReady(m);
      if (this.#pending.get(m.ref.dispatch_id) === m) this.#pending.delete(m.ref.dispatch_id);
      m.state = 'inflight';
      m.deliveries += 1;
      m.generation += 1;
      m.deadline = now + this.#ackWaitMs;
      this.#inflight.set(m.seq, m);
      out.push({ thread_id: m.ref.thread_id, dispatch_id: m.ref.dispatch_id, receipt: this.#receipt(m) });
    }
    return out;
  }

  #receipt(m: Message): DispatchSignalReceipt {
    const generation = m.generation;
    const attempts = m.deliveries;
    return {
      redeliveryAttempts: () => attempts,
      ack: async () => this.#settle(m, generation, null),
      nack: async () => this.#settle(m, generation, 0),
      nackWithDelay: async (delayMs: number) => this.#settle(m, generation, delayArg(delayMs)),
    };
  }

  /** One unref'd timer for the earliest delayed visibility or ack-wait deadline. */
  #arm(): void {
    if (this.#closed) return;
    let next = this.#delayed.first()?.visibleAt ?? Number.POSITIVE_INFINITY;
    for (const m of this.#inflight.values()) {
      next = Math.min(next, m.deadline);
      break;
    }
    if (next === Number.POSITIVE_INFINITY) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = next;
      return;
    }
    if (this.#timer !== undefined && this.#timerAt <= next) return;
    clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        this.#settleDue(Date.now());
        this.#serve();
        this.#arm();
      },
      Math.min(MAX_TIMER_MS, Math.max(1, next - Date.now())),
    );
    this.#timer.unref();
  }

  #pushReady(m: Message): void {
    m.state = 'ready';
    m.prev = this.#tail;
    m.next = null;
    if (this.#tail === null) this.#head = m;
    else this.#tail.next = m;
    this.#tail = m;
    this.#readyCount += 1;
  }

  #unlinkReady(m: Message): void {
    if (m.prev === null) this.#head = m.next;
    else m.prev.next = m.next;
    if (m.next === null) this.#tail = m.prev;
    else m.next.prev = m.prev;
    m.prev = m.next = null;
    this.#readyCount -= 1;
  }
}

/**
 * The signal sweeper: every `intervalMs` it asks the store for Queued, available dispatches whose last signal
 * is older than the republish delay (`sweep(now, limit)`, which also marks them signalled) and republishes
 * them. This is what repairs a lost publish (JetStream unreachable at enqueue, a crashed process, a signal
 * acked while the thread was busy) and wakes dispatches whose `available_at` passed without any other event.
 *
 * With Redis Streams the sweep script already XADDed the signals, so only JetStream needs `publish` here.
 * Ticks never overlap (the next one is scheduled after the previous finished), the timer is unref'd so it
 * never keeps a process alive, errors are logged (once per outage, see `OutageLog`) and the next tick runs as
 * usual. A sweep that returned a full page is followed by another page in the same tick (bounded), so a
 * backlog drains quickly.
 */
import { silentLogger, type Logger } from '../util/logger.js';
import { OutageLog } from '../util/outage-log.js';
import type { SignalRef, SignalTransport } from './transport.js';

export const DEFAULT_SWEEP_LIMIT = 1000;
/** Pages one tick may sweep when each comes back full. */
const MAX_PAGES_PER_TICK = 10;

export interface SignalSweeperOptions {
  sweep: (now: number, limit: number) => Promise<SignalRef[]>;
  transport: SignalTransport;
  intervalMs: number;
  /** Dispatches per sweep call (default 1000). */
  limit?: number;
  logger?: Logger;
}

export class SignalSweeper {
  readonly #sweep: (now: number, limit: number) => Promise<SignalRef[]>;
  readonly #transport: SignalTransport;
  readonly #intervalMs: number;
  readonly #limit: number;
  readonly #logger: Logger;
  readonly #outage: OutageLog;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the pending timer fires (epoch ms). */
  #timerAt = 0;
  /** A `soon` asked for while a tick ran: the next tick comes after this delay instead of the interval. */
  #soonAfterTick: number | null = null;
  #running: Promise<void> | null = null;
  #started = false;
  #stopped = false;

  constructor(options: SignalSweeperOptions) {
    if (!options || typeof options.sweep !== 'function' || !options.transport) {
      throw new TypeError('SignalSweeper needs sweep and transport');
    }
    const interval = options.intervalMs;
    if (typeof interval !== 'number' || !Number.isSafeInteger(interval) || interval < 1) {
      throw new TypeError('SignalSweeper intervalMs must be a positive integer');
    }
    const limit = options.limit ?? DEFAULT_SWEEP_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new TypeError('SignalSweeper limit must be a positive integer');
    this.#sweep = options.sweep;
    this.#transport = options.transport;
    this.#intervalMs = interval;
    this.#limit = limit;
    this.#logger = options.logger ?? silentLogger;
    this.#outage = new OutageLog(this.#logger, 'signal sweeper tick');
  }

  /** Start ticking (the first tick runs after one interval). Idempotent; no-op after stop. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule();
  }

  /** Stop ticking and wait for a tick in progress to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /**
   * Have the next tick run within `delayMs` (at least 1 ms; calls are coalesced: one tick serves them all).
   * For a store that made dispatches due at once and wants them published without waiting for the interval.
   * No-op before `start` and after `stop`.
   */
  soon(delayMs: number): void {
    if (!this.#started || this.#stopped) return;
    const delay = Math.max(1, Math.floor(delayMs));
    if (this.#running !== null) {
      this.#soonAfterTick = Math.min(this.#soonAfterTick ?? delay, delay);
      return;
    }
    if (this.#timer !== undefined && this.#timerAt <= Date.now() + delay) return;
    clearTimeout(this.#timer);
    this.#schedule(delay);
  }

  /** Run one sweep now (tests, and callers that want an immediate repair). Never throws. */
  async runOnce(): Promise<number> {
    let published = 0;
    try {
      for (let page = 0; page < MAX_PAGES_PER_TICK && !this.#stopped; page++) {
        const refs = await this.#sweep(Date.now(), this.#limit);
        if (refs.length > 0 && this.#transport.kind === 'jetstream') await this.#transport.publish(refs);
        published += refs.length;
        if (refs.length < this.#limit) break;
      }
      if (published > 0) this.#logger.debug?.('signal sweeper republished dispatches', { count: published });
      this.#outage.succeeded();
    } catch (err) {
      this.#outage.failed(err);
    }
    return published;
  }

  #schedule(delayMs = this.#intervalMs): void {
    if (this.#stopped) return;
    this.#timerAt = Date.now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.runOnce()
        .then(() => undefined)
        .finally(() => {
          this.#running = null;
          const soon = this.#soonAfterTick;
          this.#soonAfterTick = null;
          this.#schedule(soon ?? this.#intervalMs);
        });
    }, delayMs);
    this.#timer.unref();
  }
}

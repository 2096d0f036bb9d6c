import type { DispatchSignalReceipt } from '../contract/types.js';

/** "Thread T has dispatch D ready": what a signal says. */
export interface SignalRef {
  thread_id: string;
  dispatch_id: string;
}

export interface RawSignal extends SignalRef {
  receipt: DispatchSignalReceipt;
}

/**
 * A durable wake-up transport. The store decides *when* to signal; the transport only moves signals.
 * Filtering against dispatch state (skip signals of missing, terminal or not-yet-available dispatches)
 * happens in `filterSignals`, not here.
 */
export interface SignalTransport {
  readonly kind: 'jetstream' | 'redis-streams' | 'memory';
  /**
   * Publish wake-ups for state changes that already committed. Best effort: a failure is logged and
   * swallowed, because the sweeper republishes any Queued, available dispatch not signalled recently.
   * Transports whose signals are written by the state change itself (Redis Streams) make this a no-op
   * for store writes but still honour it for sweeper republishes.
   */
  publish(signals: readonly SignalRef[]): Promise<void>;
  /** Wait up to `expiresMs` for up to `max` signals; one blocking request, no busy loop. */
  pull(max: number, expiresMs: number): Promise<RawSignal[]>;
  close(): Promise<void>;
}

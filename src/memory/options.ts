/** Options of `new MemoryMailboxStore(options)`; anything wrong is a `Validation` error naming the option. */
import { StorageError } from '../contract/errors.js';
import { DEFAULT_LIVE_ACK_TIMEOUT_MS, DEFAULT_LIVE_BUFFER_SIZE } from './live.js';
import { DEFAULT_SIGNAL_ACK_WAIT_MS } from './signals.js';

export interface MemoryMailboxStoreOptions {
  /** In-process dispatch signals (default true). `false`: `supportsDispatchSignals()` is false, pulls give []. */
  signals?: boolean;
  /** How often the republish sweeper runs (default 5000 ms). */
  sweepIntervalMs?: number;
  /** A Queued, available dispatch is signalled again when its last signal is older than this (default 30 000 ms). */
  republishAfterMs?: number;
  /** Dispatches the sweeper republishes per tick at most (default 1000). */
  sweepBatchSize?: number;
  /** A pulled signal that is neither acked nor nacked within this is redelivered (default 30 000 ms). */
  signalAckWaitMs?: number;
  /** A live command not acked within this resolves `NoSubscriber` (default 500 ms). */
  liveAckTimeoutMs?: number;
  /** Live commands one subscriber may have waiting unread; more resolve `NoSubscriber` (default 256). */
  liveBufferSize?: number;
  /**
   * Quiet signals for busy threads (default false), as the Redis store's option of the same name: an
   * enqueue onto a thread that holds a claim publishes no signal, and a claim that ends without the same
   * call claiming its thread again signals the thread's head (once the call is over).
   */
  quietClaimedThreads?: boolean;
}

export const DEFAULT_SWEEP_INTERVAL_MS = 5000;
export const DEFAULT_REPUBLISH_AFTER_MS = 30_000;
export const DEFAULT_SWEEP_BATCH_SIZE = 1000;
const MAX_MS = 86_400_000;
const MAX_COUNT = 1_000_000;

export type ResolvedMemoryOptions = Required<MemoryMailboxStoreOptions>;

function positiveInt(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw StorageError.validation(`${name} must be an integer in 1..=${max}`);
  }
  return value;
}

export function resolveMemoryOptions(options: unknown): ResolvedMemoryOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw StorageError.validation('options must be an object');
  }
  const o = options as Record<string, unknown>;
  if (o.signals !== undefined && typeof o.signals !== 'boolean') {
    throw StorageError.validation('signals must be a boolean');
  }
  if (o.quietClaimedThreads !== undefined && typeof o.quietClaimedThreads !== 'boolean') {
    throw StorageError.validation('quietClaimedThreads must be a boolean');
  }
  return {
    signals: o.signals ?? true,
    quietClaimedThreads: o.quietClaimedThreads ?? false,
    sweepIntervalMs: positiveInt('sweepIntervalMs', o.sweepIntervalMs, DEFAULT_SWEEP_INTERVAL_MS, MAX_MS),
    republishAfterMs: positiveInt('republishAfterMs', o.republishAfterMs, DEFAULT_REPUBLISH_AFTER_MS, MAX_MS),
    sweepBatchSize: positiveInt('sweepBatchSize', o.sweepBatchSize, DEFAULT_SWEEP_BATCH_SIZE, MAX_COUNT),
    signalAckWaitMs: positiveInt('signalAckWaitMs', o.signalAckWaitMs, DEFAULT_SIGNAL_ACK_WAIT_MS, MAX_MS),
    liveAckTimeoutMs: positiveInt(
      'liveAckTimeoutMs',
      o.liveAckTimeoutMs,
      DEFAULT_LIVE_ACK_TIMEOUT_MS,
      MAX_MS,
    ),
    liveBufferSize: positiveInt('liveBufferSize', o.liveBufferSize, DEFAULT_LIVE_BUFFER_SIZE, MAX_COUNT),
  };
}

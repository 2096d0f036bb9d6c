/**
 * Store metrics, collected without touching the store's code: `instrumentStore` replaces the store's public
 * methods ON THE INSTANCE with wrappers that time the call and read its outcome (a claim's result, a lease
 * renewal's answer, an enqueue's dedupe conflict, the receipts of pulled signals, the sweeper's republishes),
 * then call the original. Class, brands and every other property stay as they were, so fused and hand-back
 * detection and `instanceof` keep working, and a store that is never instrumented runs its original code.
 *
 * Both built-in stores call `autoInstrumentStore` from their constructor: it instruments only when an
 * OpenTelemetry SDK is installed (see meter.ts), so without one the cost is one provider check per store.
 *
 * Observable gauges (read when the SDK collects, never on the hot path): dispatches by status (six O(1)
 * counts), and, when the store implements `IndexHeadsProbe`, the claimed-lease and queued-without-signal ages
 * (one bounded read each). Counters are plain numbers reported when the SDK collects (local-counter.ts), and
 * the latency histogram carries the operation only: the SDK hashes every attribute set it records, which was
 * most of what metrics cost a busy node. Counters and gauges carry `backend` and `namespace`. Everything stops
 * being reported when the store closes.
 */
import type { Attributes, BatchObservableResult, Histogram, Meter, Observable } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import { isStorageError } from '../contract/errors.js';
import type { MailboxStore } from '../contract/store.js';
import type {
  DispatchSignalEntry,
  DispatchSignalReceipt,
  RunDispatch,
  RunDispatchStatus,
} from '../contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import { LocalCounters, type LocalCounter } from './local-counter.js';
import { activeMeter, type MetricsOptions } from './meter.js';
import { LATENCY_BUCKETS_MS, METRIC } from './names.js';
import { hasIndexHeadsProbe } from './store-probe.js';

export interface StoreMetricsOptions extends MetricsOptions {
  /** Attribute `backend` of every series: `memory`, `redis`, or what you name a store of your own. */
  backend?: string;
  /** Attribute `namespace` (omitted when null). Default: the store's `namespace` property, if any. */
  namespace?: string | null;
}

/** Store methods timed as `operation` (the name of the method). */
const TIMED_OPERATIONS = [
  'enqueue',
  'claim',
  'claimDispatch',
  'claimAndStart',
  'claimDispatchAndStart',
  'ack',
  'recordDispatchStart',
  'recordRunResult',
  'completeAndAck',
  'completeAndClaimNext',
  'nack',
  'deadLetter',
  'cancel',
  'extendLease',
  'interrupt',
  'interruptDetailed',
  'currentDispatchEpoch',
  'supersedeClaimed',
  'loadDispatch',
  'loadDispatches',
  'listDispatches',
  'countDispatchesByStatus',
  'listTerminalDispatches',
  'reclaimExpiredLeases',
  'purgeTerminal',
  'queuedThreadIds',
  'releaseClaim',
  'listClaimedByRunId',
  'requeueDeadLetter',
  'purgeDeadLetters',
  'sweepDueSignals',
  'deliverLive',
  'deliverLiveTo',
] as const;

type Operation = (typeof TIMED_OPERATIONS)[number];
type Method = (...args: unknown[]) => unknown;

/** Stores already instrumented (a second call is a no-op). */
const instrumented = new WeakSet<object>();

/**
 * Instrument `store` if an SDK is installed (or `options.meterProvider` is a real one). Returns whether it
 * did. Idempotent. Install the SDK before creating the store; see meter.ts.
 */
export function instrumentStore(store: MailboxStore, options?: StoreMetricsOptions): boolean {
  if (instrumented.has(store)) return true;
  const meter = activeMeter(options);
  if (meter === null) return false;
  instrumented.add(store);
  new StoreInstruments(meter, store, options ?? {}).install();
  return true;
}

/** What the built-in stores call from their constructor: instruments only when an SDK is installed. */
export function autoInstrumentStore(store: MailboxStore, backend: string, namespace: string | null): void {
  instrumentStore(store, { backend, namespace });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

class StoreInstruments {
  readonly #meter: Meter;
  readonly #store: MailboxStore;
  readonly #target: Record<string, unknown>;
  readonly #base: Attributes;
  readonly #duration: Histogram;
  readonly #errors: LocalCounter;
  readonly #claimAttempt: LocalCounter;
  readonly #dedupeConflict: LocalCounter;
  readonly #leaseRenewal: LocalCounter;
  readonly #reclaimed: LocalCounter;
  readonly #liveDelivery: LocalCounter;
  readonly #pulled: LocalCounter;
  readonly #ack: LocalCounter;
  readonly #nack: LocalCounter;
  readonly #redelivery: LocalCounter;
  readonly #republish: LocalCounter;
  readonly #requeued: LocalCounter;
  readonly #attrs = new Map<string, Map<string | boolean, Attributes>>();
  readonly #errorAttrsCache = new Map<string, Attributes>();
  readonly #counters: LocalCounters;
  /** Attribute sets of the latency histogram: the operation only (each attribute costs a hash per record). */
  readonly #operationAttrs = new Map<string, Attributes>();

  constructor(meter: Meter, store: MailboxStore, options: StoreMetricsOptions) {
    this.#meter = meter;
    this.#store = store;
    this.#target = store as unknown as Record<string, unknown>;
    const namespace =
      options.namespace !== undefined
        ? options.namespace
        : (this.#target.namespace as string | null | undefined);
    this.#base = {
      backend: options.backend ?? 'custom',
      ...(typeof namespace === 'string' ? { namespace } : {}),
    };
    this.#counters = new LocalCounters(meter);
    const counter = (name: string, description: string): LocalCounter =>
      this.#counters.create(name, description);
    this.#duration = meter.createHistogram(METRIC.storeOperationDuration, {
      description: 'Wall time of each store call, by operation (the store method) only.',
      unit: 'ms',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_MS] },
    });
    this.#errors = counter(
      METRIC.storeOperationErrors,
      'Store calls that failed, by operation and error kind.',
    );
    this.#claimAttempt = counter(
      METRIC.claimAttempt,
      'Claim attempts by result: claimed, no_eligible, error.',
    );
    this.#dedupeConflict = counter(
      METRIC.dedupeConflict,
      'Enqueues refused because a non-terminal dispatch holds the dedupe key.',
    );
    this.#leaseRenewal = counter(METRIC.leaseRenewal, 'Lease renewals by result: renewed, lost, error.');
    this.#reclaimed = counter(
      METRIC.expiredClaimReclaimed,
      'Expired claims reclaimed, by the status they were given (Queued or DeadLetter).',
    );
    this.#liveDelivery = counter(
      METRIC.liveDelivery,
      'Live command deliveries by result: delivered, no_subscriber, error.',
    );
    this.#pulled = counter(METRIC.signalPulled, 'Dispatch signals handed to the signal loop.');
    this.#ack = counter(METRIC.signalAck, 'Dispatch signals acked.');
    this.#nack = counter(METRIC.signalNack, 'Dispatch signals nacked; delayed=true for nack with delay.');
    this.#redelivery = counter(METRIC.signalRedelivery, 'Pulled dispatch signals delivered more than once.');
    this.#republish = counter(
      METRIC.signalRepublish,
      'Signals the sweeper republished for Queued dispatches whose last signal was too old.',
    );
    this.#requeued = counter(METRIC.deadLetterRequeued, 'Dead-lettered dispatches put back in the queue.');
  }

  /** Attribute set `base + {key: value}`, built once and reused (counters key their numbers on it). */
  #with(key: string, value: string | boolean): Attributes {
    let byValue = this.#attrs.get(key);
    if (byValue === undefined) {
      byValue = new Map();
      this.#attrs.set(key, byValue);
    }
    let a = byValue.get(value);
    if (a === undefined) {
      a = { ...this.#base, [key]: value };
      byValue.set(value, a);
    }
    return a;
  }

  install(): void {
    const originals = new Map<string, Method>();
    for (const op of TIMED_OPERATIONS) {
      const original = this.#target[op];
      if (typeof original !== 'function') continue;
      const bound = (original as Method).bind(this.#store) as Method;
      originals.set(op, bound);
      this.#target[op] = this.#timed(op, bound);
    }
    const pull = this.#target.pullDispatchSignals;
    if (typeof pull === 'function') {
      const bound = (pull as Method).bind(this.#store) as Method;
      this.#target.pullDispatchSignals = async (...a: unknown[]) =>
        this.#countPulled((await bound(...a)) as DispatchSignalEntry[]);
    }
    this.#observeGauges(originals);
  }

  #timed(op: Operation, original: Method): Method {
    let attrs = this.#operationAttrs.get(op);
    if (attrs === undefined) {
      attrs = { operation: op };
      this.#operationAttrs.set(op, attrs);
    }
    const duration = this.#duration;
    if (op === 'sweepDueSignals') {
      // The memory store's sweepDueSignals answers synchronously (the Redis one with a promise): keep that.
      return (...a: unknown[]) => {
        const start = performance.now();
        const out = original(...a);
        if (isThenable(out)) {
          return out.then((value) => {
            duration.record(performance.now() - start, attrs);
            this.#succeeded(op, value);
            return value;
          });
        }
        duration.record(performance.now() - start, attrs);
        this.#succeeded(op, out);
        return out;
      };
    }
    return async (...a: unknown[]) => {
      const start = performance.now();
      try {
        const value = await original(...a);
        duration.record(performance.now() - start, attrs);
        this.#succeeded(op, value);
        return value;
      } catch (err) {
        duration.record(performance.now() - start, attrs);
        this.#failed(op, err);
        throw err;
      }
    };
  }

  #succeeded(op: Operation, value: unknown): void {
    switch (op) {
      case 'claim':
        this.#claimAttempt.add(
          1,
          this.#with('result', (value as unknown[]).length > 0 ? 'claimed' : 'no_eligible'),
        );
        return;
      case 'claimDispatch':
      case 'claimAndStart':
      case 'claimDispatchAndStart':
        this.#claimAttempt.add(1, this.#with('result', value === null ? 'no_eligible' : 'claimed'));
        return;
      case 'completeAndClaimNext': {
        const { next, claimError } = value as { next: RunDispatch | null; claimError?: unknown };
        const result = next !== null ? 'claimed' : claimError !== undefined ? 'error' : 'no_eligible';
        this.#claimAttempt.add(1, this.#with('result', result));
        return;
      }
      case 'extendLease':
        this.#leaseRenewal.add(1, this.#with('result', value === true ? 'renewed' : 'lost'));
        return;
      case 'reclaimExpiredLeases':
        for (const d of value as RunDispatch[]) this.#reclaimed.add(1, this.#with('status', d.status));
        return;
      case 'deliverLive':
      case 'deliverLiveTo':
        this.#liveDelivery.add(
          1,
          this.#with('result', value === 'Delivered' ? 'delivered' : 'no_subscriber'),
        );
        return;
      case 'sweepDueSignals': {
        const n = (value as unknown[]).length;
        if (n > 0) this.#republish.add(n, this.#base);
        return;
      }
      case 'requeueDeadLetter':
        this.#requeued.add(1, this.#base);
        return;
      default:
    }
  }

  #failed(op: Operation, err: unknown): void {
    const kind = isStorageError(err) ? err.kind : 'Other';
    this.#errors.add(1, this.#errorAttrs(op, kind));
    switch (op) {
      case 'enqueue':
        if (isStorageError(err, 'AlreadyExists') && err.detail.startsWith('dedupe_key=')) {
          this.#dedupeConflict.add(1, this.#base);
        }
        return;
      case 'claim':
      case 'claimDispatch':
      case 'claimAndStart':
      case 'claimDispatchAndStart':
        this.#claimAttempt.add(1, this.#with('result', 'error'));
        return;
      case 'extendLease':
        this.#leaseRenewal.add(1, this.#with('result', 'error'));
        return;
      case 'deliverLive':
      case 'deliverLiveTo':
        this.#liveDelivery.add(1, this.#with('result', 'error'));
        return;
      default:
    }
  }

  #errorAttrs(op: Operation, kind: string): Attributes {
    const k = `${op}\0${kind}`;
    let a = this.#errorAttrsCache.get(k);
    if (a === undefined) {
      a = { ...this.#base, operation: op, kind };
      this.#errorAttrsCache.set(k, a);
    }
    return a;
  }

  /** Count what a pull handed out, and wrap each receipt so its ack / nack is counted when it is called. */
  #countPulled(entries: DispatchSignalEntry[]): DispatchSignalEntry[] {
    if (entries.length === 0) return entries;
    this.#pulled.add(entries.length, this.#base);
    return entries.map((entry) => {
      const receipt = entry.receipt;
      if ((receipt.redeliveryAttempts() ?? 1) > 1) this.#redelivery.add(1, this.#base);
      const counted: DispatchSignalReceipt = {
        redeliveryAttempts: () => receipt.redeliveryAttempts(),
        ack: () => {
          this.#ack.add(1, this.#base);
          return receipt.ack();
        },
        nack: () => {
          this.#nack.add(1, this.#with('delayed', false));
          return receipt.nack();
        },
        nackWithDelay: (ms: number) => {
          this.#nack.add(1, this.#with('delayed', true));
          return receipt.nackWithDelay(ms);
        },
      };
      return { thread_id: entry.thread_id, dispatch_id: entry.dispatch_id, receipt: counted };
    });
  }

  /** Gauges read at collection time; the callback goes away when the store closes. */
  #observeGauges(originals: Map<string, Method>): void {
    const meter = this.#meter;
    const count = originals.get('countDispatchesByStatus');
    const dispatches = meter.createObservableGauge(METRIC.dispatches, {
      description: 'Dispatches in each status (namespace-wide; every process reports the same value).',
      valueType: ValueType.INT,
    });
    const leaseAge = meter.createObservableGauge(METRIC.claimedLeaseAge, {
      description:
        'How long the oldest expired claim has waited to be reclaimed; 0 while every lease is live.',
      unit: 'ms',
      valueType: ValueType.INT,
    });
    const queuedAge = meter.createObservableGauge(METRIC.queuedWithoutSignalAge, {
      description:
        'How long the most overdue Queued dispatch has gone without the signal it is owed; 0 when none is overdue.',
      unit: 'ms',
      valueType: ValueType.INT,
    });
    const store = this.#store;
    const probe = hasIndexHeadsProbe(store) ? store.probeIndexHeads.bind(store) : null;
    const byStatus = new Map<RunDispatchStatus, Attributes>(
      RUN_DISPATCH_STATUSES.map((s) => [s, this.#with('status', s)]),
    );
    const observables: Observable[] = [dispatches, leaseAge, queuedAge];
    const callback = async (result: BatchObservableResult): Promise<void> => {
      const now = Date.now();
      const [counts, heads] = await Promise.allSettled([
        count ? Promise.all(RUN_DISPATCH_STATUSES.map((s) => count(s) as Promise<number>)) : null,
        probe ? probe() : null,
      ]);
      // A store that is closing or unreachable reports nothing this round rather than zeros.
      if (counts.status === 'fulfilled' && counts.value !== null) {
        RUN_DISPATCH_STATUSES.forEach((s, i) => {
          result.observe(dispatches, counts.value?.[i] ?? 0, byStatus.get(s));
        });
      }
      if (heads.status === 'fulfilled' && heads.value !== null) {
        const { oldestLeaseUntil, earliestSignalDue } = heads.value;
        result.observe(leaseAge, overdue(now, oldestLeaseUntil), this.#base);
        result.observe(queuedAge, overdue(now, earliestSignalDue), this.#base);
      }
    };
    meter.addBatchObservableCallback(callback, observables);
    const stopCounters = this.#counters.register();
    const close = this.#target.close;
    if (typeof close === 'function') {
      const bound = (close as Method).bind(store) as Method;
      this.#target.close = () => {
        meter.removeBatchObservableCallback(callback, observables);
        stopCounters();
        return bound();
      };
    }
  }
}

function overdue(now: number, since: number | null): number {
  return since === null ? 0 : Math.max(0, now - since);
}

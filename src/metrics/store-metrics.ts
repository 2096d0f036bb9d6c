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
 * most of what metrics cost a busy node. Counters and gauges carry `backend` and `namespace`. The gauges stop
 * being reported when the store closes; its counts stay in the counters' totals (shared by every store of the
 * same meter, see local-counter.ts).
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
import { SeriesSet } from './batched-histogram.js';
import { localCounter, type CountCell, type LocalCounter } from './local-counter.js';
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
  'requestRunCancel',
  'readRunControl',
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

/**
 * The clock of the durations. `performance` is an accessor on Node's global object, so each
 * `performance.now()` first calls a getter: read it once here, not twice per store call.
 */
const clock: { now(): number } = performance;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** What a settled call counts from its value, beyond its duration (null: nothing). */
type OnValue = ((value: unknown) => void) | null;

/** The counts a receipt of a pulled signal updates when it is settled. */
interface ReceiptCells {
  readonly ack: CountCell;
  readonly nack: CountCell;
  readonly nackDelayed: CountCell;
}

/**
 * A pulled signal's receipt that counts its settlement. A class (methods on the prototype, one object per
 * receipt) rather than an object literal of four closures: the signal loop settles every signal it pulls.
 */
class CountedReceipt implements DispatchSignalReceipt {
  readonly #inner: DispatchSignalReceipt;
  readonly #cells: ReceiptCells;

  constructor(inner: DispatchSignalReceipt, cells: ReceiptCells) {
    this.#inner = inner;
    this.#cells = cells;
  }

  redeliveryAttempts(): number | null {
    return this.#inner.redeliveryAttempts();
  }

  ack(): Promise<void> {
    this.#cells.ack.n += 1;
    return this.#inner.ack();
  }

  nack(): Promise<void> {
    this.#cells.nack.n += 1;
    return this.#inner.nack();
  }

  nackWithDelay(delayMs: number): Promise<void> {
    this.#cells.nackDelayed.n += 1;
    return this.#inner.nackWithDelay(delayMs);
  }
}

class StoreInstruments {
  readonly #meter: Meter;
  readonly #store: MailboxStore;
  readonly #target: Record<string, unknown>;
  readonly #base: Attributes;
  readonly #duration: Histogram;
  readonly #errors: LocalCounter;
  readonly #claimAttempt: LocalCounter;
  readonly #leaseRenewal: LocalCounter;
  readonly #reclaimed: LocalCounter;
  readonly #liveDelivery: LocalCounter;
  readonly #nack: LocalCounter;
  // Cells of the hot counts, resolved once: counting is then `cell.n += 1`, no lookup.
  readonly #claimed: CountCell;
  readonly #noEligible: CountCell;
  readonly #dedupeConflict: CountCell;
  readonly #pulled: CountCell;
  readonly #redelivery: CountCell;
  readonly #republish: CountCell;
  readonly #requeued: CountCell;
  readonly #receiptCells: ReceiptCells;
  /** The duration series of every operation, flushed into the SDK before each collection and at close. */
  readonly #series = new SeriesSet();
  readonly #attrs = new Map<string, Map<string | boolean, Attributes>>();
  readonly #errorAttrsCache = new Map<string, Attributes>();

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
    const counter = (name: string, description: string): LocalCounter =>
      localCounter(meter, name, description);
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
    this.#leaseRenewal = counter(METRIC.leaseRenewal, 'Lease renewals by result: renewed, lost, error.');
    this.#reclaimed = counter(
      METRIC.expiredClaimReclaimed,
      'Expired claims reclaimed, by the status they were given (Queued or DeadLetter).',
    );
    this.#liveDelivery = counter(
      METRIC.liveDelivery,
      'Live command deliveries by result: delivered, no_subscriber, error.',
    );
    this.#nack = counter(METRIC.signalNack, 'Dispatch signals nacked; delayed=true for nack with delay.');
    const base = this.#base;
    this.#claimed = this.#claimAttempt.cell(this.#with('result', 'claimed'));
    this.#noEligible = this.#claimAttempt.cell(this.#with('result', 'no_eligible'));
    this.#dedupeConflict = counter(
      METRIC.dedupeConflict,
      'Enqueues refused because a non-terminal dispatch holds the dedupe key.',
    ).cell(base);
    this.#pulled = counter(METRIC.signalPulled, 'Dispatch signals handed to the signal loop.').cell(base);
    this.#redelivery = counter(
      METRIC.signalRedelivery,
      'Pulled dispatch signals delivered more than once.',
    ).cell(base);
    this.#republish = counter(
      METRIC.signalRepublish,
      'Signals the sweeper republished for Queued dispatches whose last signal was too old.',
    ).cell(base);
    this.#requeued = counter(
      METRIC.deadLetterRequeued,
      'Dead-lettered dispatches put back in the queue.',
    ).cell(base);
    this.#receiptCells = {
      ack: counter(METRIC.signalAck, 'Dispatch signals acked.').cell(base),
      nack: this.#nack.cell(this.#with('delayed', false)),
      nackDelayed: this.#nack.cell(this.#with('delayed', true)),
    };
  }

  /** Attribute set `base + {key: value}`, built once and reused (counters key their cells on it). */
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
      originals.set(op, (original as Method).bind(this.#store) as Method);
      this.#target[op] = this.#timed(op, original as Method);
    }
    const pull = this.#target.pullDispatchSignals;
    if (typeof pull === 'function') {
      const store = this.#store;
      const countPulled = (entries: unknown): unknown => this.#countPulled(entries as DispatchSignalEntry[]);
      this.#target.pullDispatchSignals = function pullDispatchSignals(...a: unknown[]): unknown {
        const out: unknown = Reflect.apply(pull as Method, store, a);
        return isThenable(out) ? out.then(countPulled) : countPulled(out);
      };
    }
    this.#observeGauges(originals);
  }

  /**
   * The timed version of a store method: one `.then` on the store's promise, no async function around the
   * call (an async wrapper cost a second promise, an await and its microtask turns on every call). The
   * caller gets the promise `.then` derives, which settles as the store's did: a failure the caller leaves
   * unhandled still shows up as an unhandled rejection, as it would without metrics. A method that answers
   * synchronously (the memory store's `sweepDueSignals`) or throws synchronously still does so.
   */
  #timed(op: Operation, original: Method): Method {
    const duration = this.#series.series(this.#duration, { operation: op });
    const store = this.#store;
    const onValue = this.#onValue(op);
    const failed = (start: number, err: unknown): void => {
      duration.record(clock.now() - start);
      this.#failed(op, err);
    };
    const succeeded = (start: number, value: unknown): void => {
      duration.record(clock.now() - start);
      // A store answering outside its contract must not fail the call because of what it counts.
      if (onValue !== null) {
        try {
          onValue(value);
        } catch {
          /* counted nothing */
        }
      }
    };
    return function timed(...a: unknown[]): unknown {
      const start = clock.now();
      let out: unknown;
      try {
        out = Reflect.apply(original, store, a);
      } catch (err) {
        failed(start, err);
        throw err;
      }
      if (!isThenable(out)) {
        succeeded(start, out);
        return out;
      }
      return out.then(
        (value) => {
          succeeded(start, value);
          return value;
        },
        (err: unknown) => {
          failed(start, err);
          throw err;
        },
      );
    };
  }

  /** What each operation counts from its result (resolved once per operation, not per call). */
  #onValue(op: Operation): OnValue {
    switch (op) {
      case 'claim':
        return (value) => ((value as unknown[]).length > 0 ? this.#claimed : this.#noEligible).n++;
      case 'claimDispatch':
      case 'claimAndStart':
      case 'claimDispatchAndStart':
        return (value) => (value === null ? this.#noEligible : this.#claimed).n++;
      case 'completeAndClaimNext': {
        const claimError = this.#claimAttempt.cell(this.#with('result', 'error'));
        return (value) => {
          const { next, claimError: err } = value as { next: RunDispatch | null; claimError?: unknown };
          (next !== null ? this.#claimed : err !== undefined ? claimError : this.#noEligible).n++;
        };
      }
      case 'extendLease': {
        const renewed = this.#leaseRenewal.cell(this.#with('result', 'renewed'));
        const lost = this.#leaseRenewal.cell(this.#with('result', 'lost'));
        return (value) => (value === true ? renewed : lost).n++;
      }
      case 'reclaimExpiredLeases':
        return (value) => {
          for (const d of value as RunDispatch[]) this.#reclaimed.add(1, this.#with('status', d.status));
        };
      case 'deliverLive':
      case 'deliverLiveTo': {
        const delivered = this.#liveDelivery.cell(this.#with('result', 'delivered'));
        const none = this.#liveDelivery.cell(this.#with('result', 'no_subscriber'));
        return (value) => (value === 'Delivered' ? delivered : none).n++;
      }
      case 'sweepDueSignals':
        return (value) => {
          this.#republish.n += (value as unknown[]).length;
        };
      case 'requeueDeadLetter':
        return () => this.#requeued.n++;
      default:
        return null;
    }
  }

  #failed(op: Operation, err: unknown): void {
    const kind = isStorageError(err) ? err.kind : 'Other';
    this.#errors.add(1, this.#errorAttrs(op, kind));
    switch (op) {
      case 'enqueue':
        if (isStorageError(err, 'AlreadyExists') && err.detail.startsWith('dedupe_key=')) {
          this.#dedupeConflict.n++;
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
    const n = entries.length;
    if (n === 0) return entries;
    this.#pulled.n += n;
    const cells = this.#receiptCells;
    const out: DispatchSignalEntry[] = [];
    for (const entry of entries) {
      const receipt = entry.receipt;
      if ((receipt.redeliveryAttempts() ?? 1) > 1) this.#redelivery.n++;
      out.push({
        thread_id: entry.thread_id,
        dispatch_id: entry.dispatch_id,
        receipt: new CountedReceipt(receipt, cells),
      });
    }
    return out;
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
    const series = this.#series;
    const callback = async (result: BatchObservableResult): Promise<void> => {
      // The SDK runs callbacks before it reads the histograms: hand it the durations held so far.
      series.flush();
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
    const close = this.#target.close;
    if (typeof close === 'function') {
      const bound = (close as Method).bind(store) as Method;
      this.#target.close = () => {
        meter.removeBatchObservableCallback(callback, observables);
        series.close();
        return bound();
      };
    }
  }
}

function overdue(now: number, since: number | null): number {
  return since === null ? 0 : Math.max(0, now - since);
}

/**
 * Mailbox metrics, from the events the Mailbox already emits (nothing inside the Mailbox changes):
 * - enqueue→start: on `started`, from when the dispatch became claimable to the start the store recorded
 *   (`updated_at` of the started record). "Claimable" is `created_at` for a first attempt, `available_at`
 *   for a retry or a hand-back; an inline (foreground) claim, whose `available_at` is a guard in the future,
 *   counts from `created_at`.
 * - run duration and outcome: from `started` to the event that ended the run on this node (`completed`,
 *   `retried`, `deadLettered`, `cancelled`, `superseded`, `handedBack`), using the records' `updated_at`. The
 *   start times of runs in progress are kept in a bounded map (the oldest dropped first once it holds
 *   `MAX_TRACKED_RUNS` and a sixteenth more, see BoundedMap).
 * - active runs: an observable gauge of `activeRuns`, removed when the Mailbox stops (its outcome counts stay
 *   in the counter's totals, shared by every Mailbox of the same meter: see local-counter.ts).
 * Lease renewals are counted by the store instrumentation (`extendLease`), so they need no event.
 */
import type { Attributes, Histogram, ObservableGauge, ObservableResult } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import type { EventEmitter } from 'node:events';
import type { RunDispatch } from '../contract/types.js';
import type { MailboxEvents } from '../mailbox/types.js';
import { BoundedMap } from '../util/bounded-map.js';
import { SeriesSet } from './batched-histogram.js';
import { localCounter } from './local-counter.js';
import { activeMeter, type MetricsOptions } from './meter.js';
import { LATENCY_BUCKETS_MS, METRIC } from './names.js';

/** The part of a Mailbox the metrics read. */
export interface ObservableMailbox extends EventEmitter<MailboxEvents> {
  readonly consumerId: string;
  readonly activeRuns: number;
  stop(): Promise<unknown>;
}

/** Runs in progress whose start time is kept (a sixteenth more between evictions); runs forgotten get no duration. */
export const MAX_TRACKED_RUNS = 100_000;

type Outcome = 'completed' | 'retried' | 'dead_lettered' | 'cancelled' | 'superseded' | 'handed_back';

const instrumented = new WeakSet<object>();

/**
 * Instrument `mailbox` if an SDK is installed (or `options.meterProvider` is a real one). Returns whether it
 * did. Idempotent; the gauge is removed when the Mailbox stops.
 */
export function instrumentMailbox(mailbox: ObservableMailbox, options?: MetricsOptions): boolean {
  if (instrumented.has(mailbox)) return true;
  const meter = activeMeter(options);
  if (meter === null) return false;
  instrumented.add(mailbox);

  const enqueueToStart: Histogram = meter.createHistogram(METRIC.enqueueToStart, {
    description: 'From a dispatch becoming claimable (enqueue, retry time, hand-back) to its run start.',
    unit: 'ms',
    advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_MS] },
  });
  const runDuration: Histogram = meter.createHistogram(METRIC.runDuration, {
    description: 'From a run start to how it ended on this node, by outcome.',
    unit: 'ms',
    advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_MS] },
  });
  // A plain number per outcome, reported when the SDK collects (see local-counter.ts).
  const outcomes = localCounter(
    meter,
    METRIC.dispatchOutcome,
    'What the Mailbox did with each dispatch it ended, by outcome.',
  );
  const active: ObservableGauge = meter.createObservableGauge(METRIC.activeRuns, {
    description: 'Runs executing on this Mailbox.',
    valueType: ValueType.INT,
  });

  // Values go to the SDK in batches, all of them before each collection (see batched-histogram.ts).
  const series = new SeriesSet();
  const toStart = series.series(enqueueToStart);
  const startedAt = new BoundedMap<string, number>(MAX_TRACKED_RUNS);
  /** The listener of one ending event: its attribute set and count cell are resolved here, once. */
  const ended = (outcome: Outcome): ((d: RunDispatch) => void) => {
    const attrs: Attributes = { outcome };
    const count = outcomes.cell(attrs);
    const duration = series.series(runDuration, attrs);
    return (d) => {
      count.n++;
      const start = startedAt.get(d.dispatch_id);
      if (start === undefined) return;
      startedAt.delete(d.dispatch_id);
      duration.record(Math.max(0, d.updated_at - start));
    };
  };

  mailbox.on('started', (d) => {
    const start = d.updated_at;
    const from = d.available_at > start ? d.created_at : Math.max(d.created_at, d.available_at);
    toStart.record(Math.max(0, start - from));
    startedAt.set(d.dispatch_id, start);
  });
  mailbox.on('completed', ended('completed'));
  mailbox.on('retried', ended('retried'));
  mailbox.on('deadLettered', ended('dead_lettered'));
  mailbox.on('cancelled', ended('cancelled'));
  mailbox.on('superseded', ended('superseded'));
  mailbox.on('handedBack', ended('handed_back'));

  const consumer: Attributes = { consumer: mailbox.consumerId };
  const observeActive = (result: ObservableResult): void => {
    // The SDK runs callbacks before it reads the histograms: hand it the durations held so far.
    series.flush();
    result.observe(mailbox.activeRuns, consumer);
  };
  active.addCallback(observeActive);
  const target = mailbox as unknown as Record<string, unknown>;
  const stop = mailbox.stop.bind(mailbox);
  target.stop = async () => {
    try {
      return await stop();
    } finally {
      active.removeCallback(observeActive);
      series.close();
    }
  };
  return true;
}

/** What the Mailbox calls from its constructor: instruments only when an SDK is installed. */
export function autoInstrumentMailbox(mailbox: ObservableMailbox): void {
  instrumentMailbox(mailbox);
}

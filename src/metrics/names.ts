/**
 * Names of every metric awaken-mailbox records. Where upstream Awaken's NATS mailbox has the same concept the
 * name is upstream's (`awaken_mailbox_*`), so dashboards and alerts carry over; the rest follow the same
 * pattern. Counters end in `_total`, durations are milliseconds (`_ms`), as upstream's do.
 */
export const METRIC = {
  // ---- signals (upstream's server metrics) ----
  /** Dispatch signals a pull handed to the signal loop. */
  signalPulled: 'awaken_mailbox_dispatch_signal_pulled_total',
  signalAck: 'awaken_mailbox_dispatch_signal_ack_total',
  /** Attribute `delayed`: `true` for nackWithDelay (thread blocked elsewhere, no run slot), `false` for nack. */
  signalNack: 'awaken_mailbox_dispatch_signal_nack_total',
  /** Pulled signals delivered more than once (`redeliveryAttempts() > 1`). */
  signalRedelivery: 'awaken_mailbox_dispatch_signal_redelivery_total',
  /** Signals the sweeper published for Queued, available dispatches whose last signal was too old. */
  signalRepublish: 'awaken_mailbox_dispatch_signal_republish_total',

  // ---- store (upstream's store metrics) ----
  /** Attribute `result`: `claimed`, `no_eligible` (nothing claimable, or the thread is held), `error`. */
  claimAttempt: 'awaken_mailbox_claim_attempt_total',
  /** Gauge: how long the most overdue Queued dispatch has gone without the signal it is owed. */
  queuedWithoutSignalAge: 'awaken_mailbox_queued_without_signal_age_ms',
  /** Gauge: how long the oldest expired claim has waited to be reclaimed (0 while every lease is live). */
  claimedLeaseAge: 'awaken_mailbox_claimed_dispatch_lease_age_ms',
  /** Attribute `status`: what the expired claim became (`Queued` again, or `DeadLetter`). */
  expiredClaimReclaimed: 'awaken_mailbox_expired_claim_reclaimed_total',
  /** Enqueues refused because the dedupe key is held by a non-terminal dispatch. */
  dedupeConflict: 'awaken_mailbox_dedupe_lock_conflict_total',
  /** Attribute `result`: `delivered`, `no_subscriber`, `error`. */
  liveDelivery: 'awaken_mailbox_live_delivery_total',

  // ---- additions ----
  /** Gauge, attribute `status`: dispatches in each status (the store's O(1) counts). */
  dispatches: 'awaken_mailbox_dispatches',
  /** Histogram, attribute `operation`: wall time of each store call as the caller sees it. */
  storeOperationDuration: 'awaken_mailbox_store_operation_duration_ms',
  /** Attributes `operation`, `kind` (the StorageError kind, or `Other`). */
  storeOperationErrors: 'awaken_mailbox_store_operation_errors_total',
  /** Attribute `result`: `renewed`, `lost` (the claim was gone), `error`. */
  leaseRenewal: 'awaken_mailbox_lease_renewal_total',
  /** Histogram: from a dispatch becoming claimable (enqueue, retry time, hand-back) to its run's start. */
  enqueueToStart: 'awaken_mailbox_enqueue_to_start_ms',
  /** Histogram, attribute `outcome`: from a run's start to how it ended on this node. */
  runDuration: 'awaken_mailbox_run_duration_ms',
  /**
   * Attribute `outcome`: `completed`, `retried`, `dead_lettered`, `cancelled`, `superseded`, `handed_back`;
   * what the Mailbox did with each dispatch it ended.
   */
  dispatchOutcome: 'awaken_mailbox_dispatch_outcome_total',
  /** Gauge: runs executing on this Mailbox. */
  activeRuns: 'awaken_mailbox_active_runs',
  /** Dead-lettered dispatches put back in the queue (dlq retry). */
  deadLetterRequeued: 'awaken_mailbox_dead_letter_requeued_total',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** The instrumentation scope every instrument is created under. */
export const METER_NAME = 'awaken-mailbox';

/** Bucket bounds (ms) of the latency histograms: sub-millisecond store calls up to minutes-long runs. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

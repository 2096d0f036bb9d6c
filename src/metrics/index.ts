export { METRIC, METER_NAME, LATENCY_BUCKETS_MS } from './names.js';
export type { MetricName } from './names.js';
export type { MetricsOptions } from './meter.js';
export { instrumentStore } from './store-metrics.js';
export type { StoreMetricsOptions } from './store-metrics.js';
export { instrumentMailbox, MAX_TRACKED_RUNS } from './mailbox-metrics.js';
export type { ObservableMailbox } from './mailbox-metrics.js';
export type { IndexHeads, IndexHeadsProbe } from './store-probe.js';

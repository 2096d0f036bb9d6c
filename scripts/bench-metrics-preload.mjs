/* global process */
/**
 * Preload that installs an OpenTelemetry SDK in every harness process, to measure what metrics cost and to
 * see what they recorded. Without AWAKEN_BENCH_METRICS it does nothing.
 *
 *   AWAKEN_BENCH_METRICS=stderr NODE_OPTIONS="--import ./scripts/bench-metrics-preload.mjs" \
 *     npm run bench -- --backend memory --dispatches 20000
 *
 * AWAKEN_BENCH_METRICS=stderr prints the awaken_mailbox_* series each process saw when it exits; any other
 * value is a directory where each process writes `awaken-metrics-<pid>.txt` (node processes of the Redis
 * backend: their stderr is not shown). Collection runs every AWAKEN_BENCH_METRICS_INTERVAL_MS (default
 * 1000 ms, more often than a usual scrape); what is printed is the last collection, at most that old.
 * NODE_OPTIONS reaches the node processes too, so every process of a run is measured.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';

const mode = process.env.AWAKEN_BENCH_METRICS;

function attrs(attributes) {
  const parts = Object.entries(attributes).map(([k, v]) => `${k}="${String(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function format(resourceMetrics) {
  const lines = [];
  for (const scope of resourceMetrics?.scopeMetrics ?? []) {
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) {
        const name = `${metric.descriptor.name}${attrs(point.attributes)}`;
        const v = point.value;
        if (typeof v === 'number') {
          lines.push(`${name} ${v}`);
        } else if (v && typeof v === 'object' && 'count' in v) {
          const mean = v.count > 0 ? v.sum / v.count : 0;
          lines.push(`${name} count=${v.count} mean=${mean.toFixed(3)} max=${(v.max ?? 0).toFixed(3)}`);
        }
      }
    }
  }
  return lines.sort().join('\n');
}

if (mode) {
  let last = null;
  const exporter = {
    export(resourceMetrics, done) {
      last = resourceMetrics;
      done({ code: 0 });
    },
    forceFlush: async () => undefined,
    shutdown: async () => undefined,
  };
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: Number(process.env.AWAKEN_BENCH_METRICS_INTERVAL_MS ?? 1000),
  });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  process.once('exit', () => {
    // Wrapper processes (npm, the tsx launcher) recorded nothing: say nothing for them.
    if (!format(last)) return;
    const text = `# awaken-mailbox metrics of process ${process.pid} (${process.argv.slice(1, 3).join(' ')})\n${format(last)}\n`;
    if (mode === 'stderr') process.stderr.write(text);
    else writeFileSync(join(mode, `awaken-metrics-${process.pid}.txt`), text);
  });
}

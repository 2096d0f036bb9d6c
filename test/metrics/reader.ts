/**
 * The OpenTelemetry SDK with its in-memory exporter, for tests: a MeterProvider whose metrics are read on
 * demand (`collect`), and lookups by metric name and attribute subset.
 */
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  InstrumentType,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';

type Attrs = Record<string, string | number | boolean>;

export class Snapshot {
  constructor(readonly metrics: readonly MetricData[]) {}

  names(): string[] {
    return [...new Set(this.metrics.map((m) => m.descriptor.name))].sort();
  }

  #points(name: string, attrs: Attrs): DataPoint<unknown>[] {
    const matches = (p: DataPoint<unknown>): boolean =>
      Object.entries(attrs).every(([k, v]) => p.attributes[k] === v);
    return this.metrics
      .filter((m) => m.descriptor.name === name)
      .flatMap((m) => (m.dataPoints as DataPoint<unknown>[]).filter(matches));
  }

  /** Sum of a counter's points whose attributes include `attrs` (0 when none). */
  sum(name: string, attrs: Attrs = {}): number {
    return this.#points(name, attrs).reduce((acc, p) => acc + (p.value as number), 0);
  }

  /** Number of values recorded in a histogram's points whose attributes include `attrs`. */
  count(name: string, attrs: Attrs = {}): number {
    return this.#points(name, attrs).reduce((acc, p) => acc + (p.value as Histogram).count, 0);
  }

  /** Largest value recorded in a histogram's matching points (undefined when none). */
  max(name: string, attrs: Attrs = {}): number | undefined {
    const values = this.#points(name, attrs).map((p) => (p.value as Histogram).max ?? -Infinity);
    return values.length === 0 ? undefined : Math.max(...values);
  }

  /** A gauge's value for the point whose attributes include `attrs` (undefined when absent). */
  gauge(name: string, attrs: Attrs = {}): number | undefined {
    const [point] = this.#points(name, attrs);
    return point === undefined ? undefined : (point.value as number);
  }

  type(name: string): DataPointType | undefined {
    return this.metrics.find((m) => m.descriptor.name === name)?.dataPointType;
  }
}

export interface TestMetrics {
  provider: MeterProvider;
  collect(): Promise<Snapshot>;
  shutdown(): Promise<void>;
}

/**
 * Cumulative counters and histograms (one collection shows everything so far), but gauges as observed in
 * the collection itself: a gauge whose callback was removed then disappears instead of keeping its last value.
 */
class TestExporter extends InMemoryMetricExporter {
  override selectAggregationTemporality(type: InstrumentType): AggregationTemporality {
    return type === InstrumentType.OBSERVABLE_GAUGE
      ? AggregationTemporality.DELTA
      : AggregationTemporality.CUMULATIVE;
  }
}

export function testMetrics(): TestMetrics {
  const exporter = new TestExporter(AggregationTemporality.CUMULATIVE);
  // Exports only when asked (forceFlush): the interval is far longer than any test.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      const exported = exporter.getMetrics();
      const last = exported[exported.length - 1];
      return new Snapshot(last ? last.scopeMetrics.flatMap((s) => s.metrics) : []);
    },
    shutdown: () => provider.shutdown(),
  };
}

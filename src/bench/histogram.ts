/**
 * Latency histograms for the harness: HDR histograms recording microseconds (3 significant digits), reported in
 * milliseconds. Memory stays bounded no matter how many values are recorded, which is why the coordinator never
 * keeps raw latency arrays.
 */
import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** One hour in microseconds: anything slower is clamped (and counted) rather than resizing the histogram. */
const HIGHEST_US = 3_600_000_000;

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

export class LatencyHistogram {
  private readonly histogram: Histogram;
  private clampedCount = 0;

  constructor() {
    this.histogram = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_US,
      numberOfSignificantValueDigits: 3,
      autoResize: false,
    });
  }

  /** Record one latency in milliseconds (fractions kept to the microsecond; negatives clamp to 0). */
  recordMs(ms: number): void {
    if (!Number.isFinite(ms)) return;
    let us = Math.round(Math.max(0, ms) * 1000);
    if (us > HIGHEST_US) {
      us = HIGHEST_US;
      this.clampedCount += 1;
    }
    this.histogram.recordValue(us);
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /** Values above one hour that were recorded as one hour. */
  get clamped(): number {
    return this.clampedCount;
  }

  /** Percentile in ms (0..100); 0 when empty. */
  percentileMs(p: number): number {
    if (this.histogram.totalCount === 0) return 0;
    return round3(this.histogram.getValueAtPercentile(p) / 1000);
  }

  summary(): LatencySummary {
    const h = this.histogram;
    if (h.totalCount === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    return {
      count: h.totalCount,
      mean: round3(h.mean / 1000),
      p50: round3(h.getValueAtPercentile(50) / 1000),
      p90: round3(h.getValueAtPercentile(90) / 1000),
      p99: round3(h.getValueAtPercentile(99) / 1000),
      p999: round3(h.getValueAtPercentile(99.9) / 1000),
      max: round3(h.maxValue / 1000),
    };
  }

  /** Add another histogram's values into this one (e.g. an interval histogram into the total). */
  add(other: LatencyHistogram): void {
    this.histogram.add(other.histogram);
    this.clampedCount += other.clampedCount;
  }

  reset(): void {
    this.histogram.reset();
    this.clampedCount = 0;
  }

  /** Release the histogram's buffers. */
  destroy(): void {
    this.histogram.destroy();
  }
}

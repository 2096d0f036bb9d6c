/**
 * Per-interval measurements for the report's charts: completed per second, latency percentiles of the interval,
 * and executions started per node. One sample per interval, so memory grows with run time, not with load.
 */
import { LatencyHistogram } from './histogram.js';
import type { TimelineSample } from './results.js';

export interface ProgressCounts {
  completed: number;
  terminal: number;
  inFlight: number;
  queued: number;
}

export class Timeline {
  readonly samples: TimelineSample[] = [];
  readonly e2sInterval = new LatencyHistogram();
  readonly liveInterval = new LatencyHistogram();
  private startsInterval: number[];
  private t0: number;
  private lastAt: number;
  private lastCompleted = 0;

  constructor(
    private readonly nodeIndex: ReadonlyMap<string, number>,
    t0: number,
  ) {
    this.startsInterval = new Array<number>(nodeIndex.size).fill(0);
    this.t0 = t0;
    this.lastAt = t0;
  }

  /** Start the clock now that the workload starts (nodes take a while to come up). */
  begin(t0: number): void {
    this.t0 = t0;
    this.lastAt = t0;
    this.lastCompleted = 0;
    this.samples.length = 0;
    this.startsInterval.fill(0);
    this.e2sInterval.reset();
    this.liveInterval.reset();
  }

  recordStart(node: string): void {
    const i = this.nodeIndex.get(node);
    if (i !== undefined) this.startsInterval[i] = (this.startsInterval[i] ?? 0) + 1;
  }

  /** Close the current interval at `now` (epoch ms) with the given counts. */
  sample(now: number, counts: ProgressCounts): TimelineSample {
    const seconds = Math.max((now - this.lastAt) / 1000, 1e-3);
    const sample: TimelineSample = {
      t: Math.round((now - this.t0) / 10) / 100,
      completed: counts.completed,
      terminal: counts.terminal,
      rate: Math.round(((counts.completed - this.lastCompleted) / seconds) * 10) / 10,
      in_flight: counts.inFlight,
      queued: counts.queued,
      e2s_p50: this.e2sInterval.percentileMs(50),
      e2s_p99: this.e2sInterval.percentileMs(99),
      live_p50: this.liveInterval.percentileMs(50),
      live_p99: this.liveInterval.percentileMs(99),
      per_node: this.startsInterval,
    };
    this.samples.push(sample);
    this.lastAt = now;
    this.lastCompleted = counts.completed;
    this.startsInterval = new Array<number>(this.nodeIndex.size).fill(0);
    this.e2sInterval.reset();
    this.liveInterval.reset();
    return sample;
  }

  /** Completed per second since the last sample (for the progress line between samples). */
  currentRate(now: number, completed: number): number {
    const seconds = (now - this.lastAt) / 1000;
    if (seconds < 0.2) return this.samples.at(-1)?.rate ?? 0;
    return (completed - this.lastCompleted) / seconds;
  }

  destroy(): void {
    this.e2sInterval.destroy();
    this.liveInterval.destroy();
  }
}

/** Enqueue timestamps by dispatch index, in fixed-size chunks of a Float64Array (8 bytes per dispatch). */
export class EnqueueTimes {
  private static readonly CHUNK = 65_536;
  private readonly chunks: Float64Array[] = [];

  set(index: number, at: number): void {
    const c = Math.floor(index / EnqueueTimes.CHUNK);
    while (this.chunks.length <= c) this.chunks.push(new Float64Array(EnqueueTimes.CHUNK).fill(Number.NaN));
    this.chunks[c]![index % EnqueueTimes.CHUNK] = at;
  }

  /** The enqueue time of `index`, once: later calls (re-executions) return NaN. */
  take(index: number): number {
    const chunk = this.chunks[Math.floor(index / EnqueueTimes.CHUNK)];
    if (!chunk) return Number.NaN;
    const i = index % EnqueueTimes.CHUNK;
    const at = chunk[i] ?? Number.NaN;
    chunk[i] = Number.NaN;
    return at;
  }
}

/** Dispatch ids of a bench run are `d<index>`; -1 for anything else. */
export function dispatchIndex(id: string): number {
  if (id.length < 2 || id.charCodeAt(0) !== 100 /* d */) return -1;
  const n = Number(id.slice(1));
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}

export const dispatchIdOf = (index: number): string => `d${index}`;
export const threadIdOf = (index: number, threads: number): string => `t${index % threads}`;
export const runIdOf = (index: number): string => `r${index}`;

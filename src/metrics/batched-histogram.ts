/**
 * Histogram values handed to the SDK in batches. Every value is recorded, exactly and in order; only the
 * moment it reaches the SDK changes: a series (one attribute set of one histogram) keeps its values in a small
 * array and records them into the SDK histogram when the array is full, and before each collection (`flush`,
 * called from an observable callback: the SDK runs those before it reads the synchronous instruments), so
 * every collection still sees every value recorded before it.
 *
 * Why: the SDK (3.1.1) hashes the attribute set of every value it records (`Object.keys` + sort +
 * `JSON.stringify`), and on a busy node that code runs cold, once per store call, between everything else a
 * dispatch does. Recorded back to back, the same calls run warm.
 */
import type { Attributes, Histogram } from '@opentelemetry/api';

/** Values a series holds before it records them (bounded delay, bounded memory: 1 KiB per series). */
export const BATCH = 128;

export class HistogramSeries {
  readonly #histogram: Histogram;
  readonly #attributes: Attributes | undefined;
  readonly #values = new Float64Array(BATCH);
  #n = 0;
  /** Set once its store or Mailbox is closed: no collection callback is left to flush it. */
  #direct = false;

  constructor(histogram: Histogram, attributes?: Attributes) {
    this.#histogram = histogram;
    this.#attributes = attributes;
  }

  record(value: number): void {
    this.#values[this.#n++] = value;
    if (this.#n === BATCH || this.#direct) this.flush();
  }

  direct(): void {
    this.#direct = true;
  }

  /** Record the values held so far into the SDK histogram. */
  flush(): void {
    const n = this.#n;
    if (n === 0) return;
    this.#n = 0;
    const histogram = this.#histogram;
    const attributes = this.#attributes;
    const values = this.#values;
    for (let i = 0; i < n; i++) histogram.record(values[i] as number, attributes);
  }
}

/** The series of one instrumented store or Mailbox, flushed together. */
export class SeriesSet {
  readonly #series: HistogramSeries[] = [];

  series(histogram: Histogram, attributes?: Attributes): HistogramSeries {
    const s = new HistogramSeries(histogram, attributes);
    this.#series.push(s);
    return s;
  }

  flush(): void {
    for (const s of this.#series) s.flush();
  }

  /** Flush, and from now on record each value at once (for when no collection callback is left). */
  close(): void {
    for (const s of this.#series) {
      s.flush();
      s.direct();
    }
  }
}

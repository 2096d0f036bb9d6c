/**
 * Counters kept in plain numbers and handed to the SDK only when it collects (as observable counters:
 * cumulative, monotonic — what a counter is). A synchronous `Counter.add` makes the SDK hash the attribute
 * set on every call (about 300 ns per attribute here); hot paths count several things per dispatch, so they
 * add to a number in a map instead. Keys are attribute OBJECTS, compared by reference: callers reuse one
 * frozen-in-practice object per attribute set (they are built once and cached).
 */
import type { Attributes, BatchObservableResult, Meter, ObservableCounter } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';

export class LocalCounter {
  /** A mutable cell per attribute set: an increment is one Map lookup, no Map write. */
  readonly values = new Map<Attributes, { n: number }>();

  constructor(readonly instrument: ObservableCounter) {}

  add(n: number, attributes: Attributes): void {
    const cell = this.values.get(attributes);
    if (cell === undefined) this.values.set(attributes, { n });
    else cell.n += n;
  }
}

export class LocalCounters {
  readonly #meter: Meter;
  readonly #counters: LocalCounter[] = [];

  constructor(meter: Meter) {
    this.#meter = meter;
  }

  create(name: string, description: string): LocalCounter {
    const counter = new LocalCounter(
      this.#meter.createObservableCounter(name, { description, valueType: ValueType.INT }),
    );
    this.#counters.push(counter);
    return counter;
  }

  /** Report every counter when the SDK collects; returns the function that stops it. */
  register(): () => void {
    const counters = [...this.#counters];
    const observables = counters.map((c) => c.instrument);
    const callback = (result: BatchObservableResult): void => {
      for (const c of counters) {
        for (const [attributes, cell] of c.values) result.observe(c.instrument, cell.n, attributes);
      }
    };
    this.#meter.addBatchObservableCallback(callback, observables);
    return () => this.#meter.removeBatchObservableCallback(callback, observables);
  }
}

/**
 * Counters kept in plain numbers and handed to the SDK only when it collects (as observable counters:
 * cumulative, monotonic — what a counter is). A synchronous `Counter.add` makes the SDK hash the attribute
 * set on every call (about 300 ns per attribute here); hot paths count several things per dispatch, so they
 * increment a number instead: callers resolve the cell of each attribute set once (`cell`) and then only do
 * `cell.n += 1`.
 *
 * One `LocalCounter` per metric name and meter, shared by every store and Mailbox instrumented with that
 * meter: the SDK keeps one value per attribute set for an observable counter, so two instances observing the
 * same set (two Mailboxes of one process, both `{outcome: 'completed'}`) would overwrite each other and the
 * series would show one of them. Shared cells sum them. Counts of a closed store or stopped Mailbox stay in
 * the totals (a cumulative counter must not go down).
 */
import type { Attributes, Meter, ObservableCounter, ObservableResult } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';

/** The count of one attribute set. */
export interface CountCell {
  n: number;
}

interface Cell extends CountCell {
  readonly attributes: Attributes;
}

export class LocalCounter {
  /** Cells by a canonical form of their attribute set (so equal sets from different instances share one). */
  readonly #cells = new Map<string, Cell>();
  /** The same cells by attribute object, for callers that did not resolve their cells up front. */
  readonly #byObject = new WeakMap<Attributes, Cell>();

  constructor(instrument: ObservableCounter) {
    instrument.addCallback((result: ObservableResult) => {
      // A cell resolved up front but never incremented is not a series yet (as before cells existed).
      for (const cell of this.#cells.values()) if (cell.n > 0) result.observe(cell.n, cell.attributes);
    });
  }

  /** The cell of `attributes`; resolve it once and keep it, it is the same cell for equal sets. */
  cell(attributes: Attributes): CountCell {
    let cell = this.#byObject.get(attributes);
    if (cell !== undefined) return cell;
    const key = canonical(attributes);
    cell = this.#cells.get(key);
    if (cell === undefined) {
      cell = { n: 0, attributes: { ...attributes } };
      this.#cells.set(key, cell);
    }
    this.#byObject.set(attributes, cell);
    return cell;
  }

  /** For the rare paths: `cell(attributes).n += n` (one WeakMap lookup for a known attribute object). */
  add(n: number, attributes: Attributes): void {
    this.cell(attributes).n += n;
  }
}

const counters = new WeakMap<Meter, Map<string, LocalCounter>>();

/** The counter `name` of `meter`, created (and its instrument registered) on first use. */
export function localCounter(meter: Meter, name: string, description: string): LocalCounter {
  let byName = counters.get(meter);
  if (byName === undefined) {
    byName = new Map();
    counters.set(meter, byName);
  }
  let counter = byName.get(name);
  if (counter === undefined) {
    counter = new LocalCounter(
      meter.createObservableCounter(name, { description, valueType: ValueType.INT }),
    );
    byName.set(name, counter);
  }
  return counter;
}

function canonical(attributes: Attributes): string {
  return JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((k) => [k, attributes[k]]),
  );
}

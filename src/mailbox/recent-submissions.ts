/**
 * Run ids this node submitted, mapped to their dispatch, so `cancel(runId)` / `sendDecision(runId, …)` can find
 * the dispatch without a run store. Bounded: the oldest entries are forgotten first (see BoundedMap).
 */
import { BoundedMap } from '../util/bounded-map.js';

export interface SubmittedRun {
  dispatchId: string;
  threadId: string;
}

export class RecentSubmissions {
  readonly #byRunId: BoundedMap<string, SubmittedRun>;

  constructor(max = 10_000) {
    this.#byRunId = new BoundedMap(max);
  }

  remember(runId: string, run: SubmittedRun): void {
    this.#byRunId.set(runId, run);
  }

  get(runId: string): SubmittedRun | undefined {
    return this.#byRunId.get(runId);
  }
}

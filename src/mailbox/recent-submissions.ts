/**
 * Run ids this node submitted, mapped to their dispatch, so `cancel(runId)` / `sendDecision(runId, …)` can find
 * the dispatch without a run store. Bounded: the oldest entries are forgotten first.
 */
export interface SubmittedRun {
  dispatchId: string;
  threadId: string;
}

export class RecentSubmissions {
  readonly #max: number;
  readonly #byRunId = new Map<string, SubmittedRun>();

  constructor(max = 10_000) {
    this.#max = max;
  }

  remember(runId: string, run: SubmittedRun): void {
    this.#byRunId.delete(runId);
    this.#byRunId.set(runId, run);
    if (this.#byRunId.size > this.#max) {
      const oldest = this.#byRunId.keys().next();
      if (!oldest.done) this.#byRunId.delete(oldest.value);
    }
  }

  get(runId: string): SubmittedRun | undefined {
    return this.#byRunId.get(runId);
  }
}

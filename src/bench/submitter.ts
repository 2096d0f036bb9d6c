/**
 * The submission loop shared by the Mailbox workload and the BullMQ baseline: submit dispatch 0, 1, 2, … either
 * as fast as allowed or at a fixed rate, for a count or a duration, with a bounded number of enqueue calls in
 * flight (they pipeline on one connection) and optionally a bounded backlog.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface SubmitPlan {
  /** Stop after this many (null: use `durationMs`). */
  count: number | null;
  /** Stop submitting after this long (null: use `count`). */
  durationMs: number | null;
  /** Submissions per second; null = as fast as possible. */
  rate: number | null;
  /** Most submitted-but-unfinished dispatches (as `pending()` reports); null = unbounded. */
  maxPending: number | null;
  /** Most enqueue calls in flight at once. */
  concurrency: number;
}

export interface SubmitOutcome {
  submitted: number;
  /** The first submission error, if any: submission stops on it. */
  error: Error | null;
  startedAt: number;
  endedAt: number;
}

const BACKLOG_WAIT_MS = 2;

export class Submitter {
  private stopped = false;
  private submittedCount = 0;

  constructor(
    private readonly plan: SubmitPlan,
    private readonly submitOne: (index: number) => Promise<void>,
    private readonly pending: () => number = () => 0,
  ) {
    if (plan.count === null && plan.durationMs === null)
      throw new RangeError('a submit plan needs a count or a duration');
    if (!(plan.concurrency >= 1)) throw new RangeError('submit concurrency must be at least 1');
  }

  /** How many submissions were started so far. */
  get submitted(): number {
    return this.submittedCount;
  }

  stop(): void {
    this.stopped = true;
  }

  async run(): Promise<SubmitOutcome> {
    const { plan } = this;
    const startedAt = performance.now();
    // A count and one waiter, not `Promise.race` over the calls in flight: each race attaches a reaction to
    // every pending call, and a call pending across k races carries k of them (with 128 in flight and calls
    // that answer at once: ~30 µs of CPU per submission against ~1-4; in the harness runs it did not show).
    let inflight = 0;
    let slotFreed: (() => void) | null = null;
    let error: Error | null = null;
    const settled = (): void => {
      inflight--;
      const wake = slotFreed;
      slotFreed = null;
      wake?.();
    };
    const waitForSlot = (): Promise<void> =>
      new Promise<void>((resolve) => {
        slotFreed = resolve;
      });
    for (let i = 0; ;) {
      if (this.stopped || error) break;
      if (plan.count !== null && i >= plan.count) break;
      const now = performance.now();
      if (plan.durationMs !== null && now - startedAt >= plan.durationMs) break;
      if (plan.rate !== null) {
        const due = startedAt + (i * 1000) / plan.rate;
        if (due > now) {
          await sleep(Math.max(1, Math.floor(due - now)));
          continue;
        }
      }
      if (plan.maxPending !== null && this.pending() >= plan.maxPending) {
        await sleep(BACKLOG_WAIT_MS);
        continue;
      }
      if (inflight >= plan.concurrency) {
        await waitForSlot();
        continue;
      }
      const index = i++;
      this.submittedCount = i;
      inflight++;
      this.submitOne(index).then(settled, (err: unknown) => {
        error ??= err instanceof Error ? err : new Error(String(err));
        settled();
      });
    }
    while (inflight > 0) await waitForSlot();
    return { submitted: this.submittedCount, error, startedAt, endedAt: performance.now() };
  }
}

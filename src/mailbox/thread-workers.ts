/**
 * Per-thread worker state on this node: one run at a time per thread. A worker is Idle,
 * Claiming (a claim call is in flight) or Running (an `ActiveRun`). `recheck` remembers that work was signalled
 * while the worker was busy, so an in-flight claim that found nothing looks once more instead of stranding it.
 * `busyWakes` counts those signals; `wakesAtChainedClaim` is its value when a run's completion sent its
 * chained claim of the thread's next dispatch. When that claim found nothing and the count has not moved since,
 * everything signalled before it was already looked at by it, so the run ends without another claim.
 */
import type { ActiveRun } from './active-run.js';

export interface ThreadWorker {
  readonly threadId: string;
  claiming: number;
  run: ActiveRun | null;
  recheck: boolean;
  busyWakes: number;
  wakesAtChainedClaim: number;
  wakeAt: number | null;
  wakeTimer: NodeJS.Timeout | null;
}

export type WorkerPhase = 'Idle' | 'Claiming' | 'Running';

export function phaseOf(w: ThreadWorker): WorkerPhase {
  if (w.run) return 'Running';
  return w.claiming > 0 ? 'Claiming' : 'Idle';
}

export class ThreadWorkers {
  readonly #workers = new Map<string, ThreadWorker>();

  get size(): number {
    return this.#workers.size;
  }

  get(threadId: string): ThreadWorker | undefined {
    return this.#workers.get(threadId);
  }

  ensure(threadId: string): ThreadWorker {
    let w = this.#workers.get(threadId);
    if (!w) {
      w = {
        threadId,
        claiming: 0,
        run: null,
        recheck: false,
        busyWakes: 0,
        wakesAtChainedClaim: -1,
        wakeAt: null,
        wakeTimer: null,
      };
      this.#workers.set(threadId, w);
    }
    return w;
  }

  isIdle(threadId: string): boolean {
    const w = this.#workers.get(threadId);
    return !w || phaseOf(w) === 'Idle';
  }

  /** Every active run on this node. */
  runs(): ActiveRun[] {
    const out: ActiveRun[] = [];
    for (const w of this.#workers.values()) if (w.run) out.push(w.run);
    return out;
  }

  /** Drop Idle workers with no pending wake-up; returns how many were dropped. */
  dropIdle(): number {
    let dropped = 0;
    for (const [threadId, w] of this.#workers) {
      if (phaseOf(w) === 'Idle' && w.wakeTimer === null) {
        this.#workers.delete(threadId);
        dropped++;
      }
    }
    return dropped;
  }

  clearWakeTimers(): void {
    for (const w of this.#workers.values()) {
      if (w.wakeTimer) clearTimeout(w.wakeTimer);
      w.wakeTimer = null;
      w.wakeAt = null;
    }
  }
}

/**
 * Small timing helpers: cancellable sleeps, bounded waits, periodic tasks.
 *
 * Waits a caller awaits (inside `stop()`, `submit()`, ...) keep their timer referenced: with an in-memory store
 * nothing else may hold the event loop open, and an unref'd wait would let the process exit mid-await. They are
 * always bounded and cleared when done. Background timers (periodic tasks, the pull-error pause) are unref'd.
 */

/** Resolves after `ms`, or at once when `cancel` is triggered. `unref` for background pauses only. */
export function interruptibleSleep(
  ms: number,
  opts: { unref?: boolean } = {},
): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let resolveFn!: () => void;
  const promise = new Promise<void>((resolve) => {
    resolveFn = resolve;
    timer = setTimeout(resolve, ms);
    if (opts.unref) timer.unref();
  });
  return {
    promise,
    cancel: () => {
      clearTimeout(timer);
      resolveFn();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return interruptibleSleep(ms).promise;
}

/** Wait for `promise` at most `ms`; true when it settled in time. Never rejects. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const wait = interruptibleSleep(ms);
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      wait.promise.then(() => false),
    ]);
  } finally {
    wait.cancel();
  }
}

/**
 * Run `task` every `intervalMs` (first run after one interval, like a tokio interval whose first tick is
 * skipped). A run still in progress makes the next tick a no-op, so runs never overlap.
 */
export class PeriodicTask {
  readonly #intervalMs: number;
  readonly #task: () => Promise<void>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(intervalMs: number, task: () => Promise<void>) {
    this.#intervalMs = intervalMs;
    this.#task = task;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.runNow(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Run now unless a run is in progress; resolves when that run ends. */
  runNow(): Promise<void> {
    this.#running ??= this.#task().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Stop the timer and wait for a run in progress. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }
}

/** A counting semaphore: at most `limit` holders at once. */
export class Semaphore {
  readonly #limit: number;
  #held = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  get held(): number {
    return this.#held;
  }

  async acquire(): Promise<void> {
    if (this.#held < this.#limit) {
      this.#held++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#held--;
  }
}

/** Run `fn` over `items` with at most `concurrency` in flight; errors are the callback's job. */
export async function forEachLimited<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

/**
 * The run's inbox behind `ExecutorContext.commands`: live commands (from the store's live channel or from this
 * node's own `sendMessages` / `sendDecision`) wait here until the executor reads them. Bounded: when full, a
 * command is refused and its receipt is never acked, so the sender sees "not delivered" and falls back.
 * Closing ends every iterator; commands still buffered are dropped un-acked (the run never accepted them).
 *
 * Commands are only taken once the executor started reading (`isReading`: it asked `ctx.commands` for an
 * iterator). An executor that never reads them refuses every command at once, so a sender falls back to a
 * durable dispatch without waiting for an ack that cannot come.
 */
import type { LiveCommandReceipt, LiveRunCommand, LiveRunCommandEntry } from '../contract/types.js';

/** Same bound as the NATS live subscription buffer. */
export const DEFAULT_INBOX_CAPACITY = 256;

export class CommandInbox implements AsyncIterable<LiveRunCommandEntry> {
  readonly #capacity: number;
  readonly #buffer: LiveRunCommandEntry[] = [];
  readonly #waiters: ((result: IteratorResult<LiveRunCommandEntry>) => void)[] = [];
  #closed = false;
  #reading = false;
  /** Made on first use (local deliveries only): most runs never need it. */
  #closedPromise: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;

  constructor(capacity = DEFAULT_INBOX_CAPACITY) {
    this.#capacity = capacity;
  }

  /** Resolves once the inbox is closed. */
  get closed(): Promise<void> {
    if (this.#closedPromise === null) {
      this.#closedPromise = this.#closed
        ? Promise.resolve()
        : new Promise((resolve) => (this.#resolveClosed = resolve));
    }
    return this.#closedPromise;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Whether the executor asked for the commands (and so may accept some). */
  get isReading(): boolean {
    return this.#reading;
  }

  /**
   * Hand an entry to the executor. False when the inbox is closed, full, or its executor does not read
   * commands (the entry is not delivered).
   */
  offer(entry: LiveRunCommandEntry): boolean {
    if (this.#closed || !this.#reading) return false;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter({ value: entry, done: false });
      return true;
    }
    if (this.#buffer.length >= this.#capacity) return false;
    this.#buffer.push(entry);
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer.length = 0;
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
    this.#resolveClosed?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<LiveRunCommandEntry> {
    this.#reading = true;
    return {
      next: () => {
        const entry = this.#buffer.shift();
        if (entry) return Promise.resolve({ value: entry, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      // Breaking out of a `for await` only ends that loop; the inbox stays open for the run.
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}

/**
 * Deliver `command` to a run on this node and wait until the executor acks it, the run ends, or `timeoutMs`
 * passes. True only on ack, like a live `Delivered`.
 */
export async function deliverLocally(
  inbox: CommandInbox,
  command: LiveRunCommand,
  timeoutMs: number,
): Promise<boolean> {
  let acked!: () => void;
  const ackedPromise = new Promise<true>((resolve) => (acked = () => resolve(true)));
  const receipt: LiveCommandReceipt = {
    ack: () => {
      acked();
      return Promise.resolve();
    },
  };
  if (!inbox.offer({ command, receipt })) return false;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    // Referenced: the caller awaits this answer (and the timer is cleared as soon as there is one).
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([ackedPromise, inbox.closed.then(() => false as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

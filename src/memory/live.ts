/**
 * In-process live steering (memory semantics): one consumer per exact key, thread-level
 * (`thread:<t>`) or targeted (`thread:<t>:run:<r>[:dispatch:<d>]`). Keys are JSON-encoded tuples, so ids
 * containing ':' (scoped ids) or any other character can never collide, and a thread-level key never equals
 * a targeted one.
 *
 * A delivery resolves `Delivered` only once the consumer acked the receipt; `NoSubscriber` when nobody
 * listens, the buffer is full, the stream was closed (or replaced) before the ack, or the ack did not come
 * within the ack timeout. Commands are validated and deep-copied; order is preserved per subscriber.
 */
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../contract/types.js';
import type { LiveChannel } from '../live/channel.js';

export const DEFAULT_LIVE_ACK_TIMEOUT_MS = 500;
export const DEFAULT_LIVE_BUFFER_SIZE = 256;

export interface MemoryLiveChannelOptions {
  /** A delivered command not acked within this resolves `NoSubscriber` (default 500 ms). */
  ackTimeoutMs?: number;
  /** Commands a subscriber may have buffered (not yet read); more resolve `NoSubscriber` (default 256). */
  bufferSize?: number;
}

export function threadKey(threadId: string): string {
  return JSON.stringify(['thread', threadId]);
}

export function targetKey(target: LiveRunTarget): string {
  return JSON.stringify(['run', target.thread_id, target.run_id, target.dispatch_id ?? null]);
}

interface PendingCommand {
  readonly command: LiveRunCommand;
  settled: boolean;
  resolve: (outcome: LiveDeliveryOutcome) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type Next = IteratorResult<LiveRunCommandEntry, undefined>;

const DONE: Next = { done: true, value: undefined };

class MemoryLiveStream implements LiveRunCommandStream {
  /** Offered, not yet read by the consumer. */
  readonly #buffer: PendingCommand[] = [];
  /** Read by the consumer, not acked yet. */
  readonly #outstanding = new Set<PendingCommand>();
  readonly #readers: ((next: Next) => void)[] = [];
  readonly #bufferSize: number;
  readonly #onClose: (stream: MemoryLiveStream) => void;
  #closed = false;

  constructor(bufferSize: number, onClose: (stream: MemoryLiveStream) => void) {
    this.#bufferSize = bufferSize;
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Hand a command to this subscriber; false when it cannot take it (closed or buffer full). */
  offer(p: PendingCommand): boolean {
    if (this.#closed) return false;
    const reader = this.#readers.shift();
    if (reader !== undefined) {
      reader({ done: false, value: this.#entry(p) });
      return true;
    }
    if (this.#buffer.length >= this.#bufferSize) return false;
    this.#buffer.push(p);
    return true;
  }

  /** Resolve a delivery once; forget it here. */
  settle(p: PendingCommand, outcome: LiveDeliveryOutcome): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    this.#outstanding.delete(p);
    const at = this.#buffer.indexOf(p);
    if (at >= 0) this.#buffer.splice(at, 1);
    p.resolve(outcome);
  }

  next(): Promise<Next> {
    const p = this.#buffer.shift();
    if (p !== undefined) return Promise.resolve({ done: false, value: this.#entry(p) });
    if (this.#closed) return Promise.resolve(DONE);
    return new Promise((resolve) => this.#readers.push(resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<LiveRunCommandEntry, undefined> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return DONE;
      },
    };
  }

  /** End the stream: pending and unacked deliveries resolve `NoSubscriber`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose(this);
    for (const p of [...this.#buffer, ...this.#outstanding]) this.settle(p, 'NoSubscriber');
    for (const reader of this.#readers.splice(0)) reader(DONE);
  }

  #entry(p: PendingCommand): LiveRunCommandEntry {
    this.#outstanding.add(p);
    return {
      command: p.command,
      receipt: {
        ack: async () => {
          if (!this.#closed) this.settle(p, 'Delivered');
        },
        reject: async () => this.settle(p, 'NoSubscriber'),
      },
    };
  }
}

export class MemoryLiveChannel implements LiveChannel {
  readonly #ackTimeoutMs: number;
  readonly #bufferSize: number;
  readonly #subscribers = new Map<string, MemoryLiveStream>();
  #closed = false;

  constructor(options: MemoryLiveChannelOptions = {}) {
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_LIVE_ACK_TIMEOUT_MS;
    this.#bufferSize = options.bufferSize ?? DEFAULT_LIVE_BUFFER_SIZE;
  }

  /** Keys with an open subscriber (for tests and diagnostics). */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  async deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    const thread = args.id('thread_id', threadId);
    const cmd = args.liveCommand(command);
    return this.#deliver(threadKey(thread), cmd);
  }

  async deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    const t = args.liveTarget(target);
    const cmd = args.liveCommand(command);
    return this.#deliver(targetKey(t), cmd);
  }

  async openLiveChannel(threadId: string): Promise<LiveRunCommandStream> {
    const thread = args.id('thread_id', threadId);
    return this.#open(threadKey(thread));
  }

  async openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    const t = args.liveTarget(target);
    return this.#open(targetKey(t));
  }

  /** End every stream (their pending deliveries resolve `NoSubscriber`). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const streams = [...this.#subscribers.values()];
    this.#subscribers.clear();
    await Promise.all(streams.map((s) => s.close()));
  }

  #assertOpen(): void {
    if (this.#closed) throw StorageError.io('live channel is closed');
  }

  async #open(key: string): Promise<LiveRunCommandStream> {
    this.#assertOpen();
    const stream = new MemoryLiveStream(this.#bufferSize, (s) => {
      if (this.#subscribers.get(key) === s) this.#subscribers.delete(key);
    });
    const previous = this.#subscribers.get(key);
    this.#subscribers.set(key, stream);
    // Single consumer per key: the previous subscriber's stream ends.
    if (previous !== undefined) await previous.close();
    return stream;
  }

  #deliver(key: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    this.#assertOpen();
    const stream = this.#subscribers.get(key);
    if (stream === undefined || stream.closed) return Promise.resolve('NoSubscriber');
    return new Promise<LiveDeliveryOutcome>((resolve) => {
      const p: PendingCommand = {
        command: structuredClone(command),
        settled: false,
        resolve,
        timer: undefined,
      };
      p.timer = setTimeout(() => stream.settle(p, 'NoSubscriber'), this.#ackTimeoutMs);
      if (!stream.offer(p)) stream.settle(p, 'NoSubscriber');
    });
  }
}

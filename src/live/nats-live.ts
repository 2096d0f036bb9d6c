/**
 * Live steering over core NATS request/reply, wire-compatible with upstream Awaken's live commands.
 *
 * Producer: one request to the exact subject; `Delivered` only when a reply arrived (the consumer acked),
 * `NoSubscriber` on no responders (immediate, nats-server answers 503) or on timeout (a subscriber dropped the
 * receipt, could not decode, or its buffer was full). Anything else is `Io`: it does not prove the command went
 * unseen. Consumer: a plain subscription on the exact subject (no wildcard, no queue group), so several
 * subscribers of one subject all receive every command and the producer is satisfied by the first ack.
 * Nothing is persisted and nothing is retried.
 *
 * Opening a channel and closing a stream each wait for the end of the current event-loop turn (subscriptions
 * opened in one turn share one PING/PONG; UNSUBs go out together): under fake timers that also fake
 * `setImmediate` (vitest's default), advance them or `open` / `close` do not resolve.
 */
import { Empty, NoRespondersError, RequestError, TimeoutError, headers } from '@nats-io/nats-core';
import type { Msg, NatsConnection, RequestOptions, Subscription } from '@nats-io/nats-core';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type {
  LiveCommandReceipt,
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../contract/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { LiveChannel, ThreadRunsChannel, ThreadRunsLive } from './channel.js';
import { NatsThreadRuns } from './nats-thread-runs.js';
import { targetLiveSubject, threadLiveSubject, validateLivePrefix } from './subjects.js';
import { CONTENT_TYPE_HEADER, decodeLivePayload, encodeLivePayload, type LiveCodec } from './wire.js';

export { liveSubjectPrefix } from './subjects.js';

export const DEFAULT_LIVE_REQUEST_TIMEOUT_MS = 5000;
/** Commands buffered per subscription while the consumer is not reading; more are dropped (and counted). */
export const DEFAULT_MAX_BUFFERED_COMMANDS = 256;
const MAX_REQUEST_TIMEOUT_MS = 3_600_000;
/** At most one "dropped inbound payload" warning per channel in this window; the counters keep the totals. */
const DROP_WARN_INTERVAL_MS = 10_000;

export interface NatsLiveChannelOptions {
  /** An open connection; the channel never closes it (its owner does). */
  nc: NatsConnection;
  /** From `liveSubjectPrefix(namespace, override)`: `live`, `<namespace>.live` or the override. */
  subjectPrefix: string;
  /** Producer request timeout (default 5000 ms, upstream `nats_request_timeout`). */
  requestTimeoutMs?: number;
  /** Producer payload codec (default `json`, the upstream wire format). Receivers accept both. */
  codec?: LiveCodec;
  logger?: Logger;
  /** Per-subscription buffer bound (default 256). */
  maxBufferedCommands?: number;
}

export class NatsLiveChannel implements LiveChannel, ThreadRunsChannel {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #codec: LiveCodec;
  readonly #logger: Logger;
  readonly #maxBuffered: number;
  readonly #streams = new Set<NatsLiveStream>();
  readonly #threadRuns = new Set<NatsThreadRuns>();
  #closed = false;
  /** The shared flush subscriptions opened in this turn wait for (see `#flushAfterTurn`). */
  #nextFlush: Promise<void> | null = null;
  /** Subscriptions of ended streams, unsubscribed together (see `#unsubscribeAfterTurn`). */
  #unsubscribing: Subscription[] = [];
  #unsubscribed: Promise<void> | null = null;
  #dropped = 0;
  #overflowed = 0;
  #lastDropWarnAt = 0;
  #dropsSinceWarn = 0;

  constructor(options: NatsLiveChannelOptions) {
    if (!options || typeof options !== 'object') throw StorageError.validation('options must be an object');
    const { nc } = options;
    if (!nc || typeof nc.request !== 'function' || typeof nc.subscribe !== 'function') {
      throw StorageError.validation('nc must be a NatsConnection');
    }
    this.#nc = nc;
    this.#prefix = validateLivePrefix(options.subjectPrefix, 'subjectPrefix');
    this.#timeoutMs = positiveInt(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      DEFAULT_LIVE_REQUEST_TIMEOUT_MS,
      MAX_REQUEST_TIMEOUT_MS,
    );
    const codec = options.codec ?? 'json';
    if (codec !== 'json' && codec !== 'msgpack') {
      throw StorageError.validation("codec must be 'json' or 'msgpack'");
    }
    this.#codec = codec;
    this.#logger = options.logger ?? silentLogger;
    this.#maxBuffered = positiveInt(
      'maxBufferedCommands',
      options.maxBufferedCommands,
      DEFAULT_MAX_BUFFERED_COMMANDS,
      1_000_000,
    );
  }

  /** Inbound payloads dropped because they were malformed (bad JSON / msgpack, unknown variant or content type). */
  get droppedMessages(): number {
    return this.#dropped;
  }

  /** Inbound commands dropped because a subscription's buffer was full (the consumer was not reading). */
  get overflowedMessages(): number {
    return this.#overflowed;
  }

  get subjectPrefix(): string {
    return this.#prefix;
  }

  async deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    const thread = args.id('thread_id', threadId);
    const cmd = args.liveCommand(command);
    return this.#deliver(threadLiveSubject(this.#prefix, thread), cmd);
  }

  async deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    const t = args.liveTarget(target);
    const cmd = args.liveCommand(command);
    return this.#deliver(targetLiveSubject(this.#prefix, t), cmd);
  }

  async openLiveChannel(threadId: string): Promise<LiveRunCommandStream> {
    const thread = args.id('thread_id', threadId);
    return this.#open(threadLiveSubject(this.#prefix, thread));
  }

  async openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    const t = args.liveTarget(target);
    return this.#open(targetLiveSubject(this.#prefix, t));
  }

  async openThreadRuns(threadId: string, holdsThread: () => boolean): Promise<ThreadRunsLive> {
    const thread = args.id('thread_id', threadId);
    this.#assertOpen();
    let runs: NatsThreadRuns;
    try {
      runs = new NatsThreadRuns({
        prefix: this.#prefix,
        threadId: thread,
        maxBuffered: this.#maxBuffered,
        logger: this.#logger,
        holdsThread,
        subscribe: (subject, callback) => this.#nc.subscribe(subject, { callback }),
        route: (stream, subject, err, msg) => this.#onMessage(stream, subject, err, msg),
        unsubscribe: (sub) => this.#unsubscribeAfterTurn(sub),
        onClose: () => this.#threadRuns.delete(runs),
      });
    } catch (err) {
      throw StorageError.io(`nats subscribe: ${redactCredentials(errorText(err))}`);
    }
    this.#threadRuns.add(runs);
    // As for one run's channel: the server has registered the interest before a run is served from it.
    await this.#flushAfterTurn();
    return runs;
  }

  /** Unsubscribe every stream this channel opened and end their iterators. Idempotent; leaves `nc` open. */
  async close(): Promise<void> {
    this.#closed = true;
    const streams = [...this.#streams];
    this.#streams.clear();
    const threadRuns = [...this.#threadRuns];
    this.#threadRuns.clear();
    await Promise.all([...streams.map((s) => s.close()), ...threadRuns.map((r) => r.close())]);
    this.#unsubscribeNow();
  }

  async #deliver(subject: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    this.#assertOpen();
    const payload = encodeLivePayload(command, this.#codec);
    const opts: RequestOptions = { timeout: this.#timeoutMs };
    if (payload.contentType !== null) {
      const h = headers();
      h.set(CONTENT_TYPE_HEADER, payload.contentType);
      opts.headers = h;
    }
    try {
      await this.#nc.request(subject, payload.data, opts);
      return 'Delivered';
    } catch (err) {
      if (meansNoSubscriber(err)) return 'NoSubscriber';
      throw StorageError.io(`nats request: ${redactCredentials(errorText(err))}`);
    }
  }

  async #open(subject: string): Promise<LiveRunCommandStream> {
    this.#assertOpen();
    const stream = new NatsLiveStream(
      this.#maxBuffered,
      () => this.#streams.delete(stream),
      (ended) => this.#unsubscribeAfterTurn(ended),
    );
    let sub: Subscription;
    try {
      sub = this.#nc.subscribe(subject, {
        callback: (err, msg) => this.#onMessage(stream, subject, err, msg),
      });
    } catch (err) {
      throw StorageError.io(`nats subscribe: ${redactCredentials(errorText(err))}`);
    }
    stream.attach(sub);
    this.#streams.add(stream);
    // One PING/PONG so the server has registered the interest before we return: a producer delivering right
    // after `open` resolves must not see "no responders". While disconnected, nats.js re-sends the SUB on
    // reconnect, so a slow flush is not an error; we just stop waiting.
    await this.#flushAfterTurn();
    return stream;
  }

  /**
   * UNSUB of ended streams, sent together once this event-loop turn is over: nats.js writes to its socket
   * once per microtask checkpoint, and runs end in separate timer callbacks, so one UNSUB each was one
   * socket write each. Resolves once the UNSUB is queued on the connection, so a request sent after `close`
   * resolves is ordered behind it and sees no responders at once.
   */
  #unsubscribeAfterTurn(sub: Subscription): Promise<void> {
    this.#unsubscribing.push(sub);
    if (this.#unsubscribed === null) {
      this.#unsubscribed = new Promise<void>((resolve) =>
        setImmediate(() => {
          this.#unsubscribeNow();
          resolve();
        }),
      );
    }
    return this.#unsubscribed;
  }

  #unsubscribeNow(): void {
    const subs = this.#unsubscribing;
    this.#unsubscribing = [];
    this.#unsubscribed = null;
    for (const sub of subs) {
      if (sub.isClosed()) continue;
      try {
        sub.unsubscribe();
      } catch {
        // The connection is already closed: nothing left to unsubscribe.
      }
    }
  }

  /**
   * The PING/PONG of every subscription opened in this event-loop turn: runs started by one batch of store
   * replies share one round trip (and one socket write) instead of one each, which cost a worker node a
   * quarter of its CPU at a few thousand runs per second. The SUBs were queued before the PING, and the
   * server answers in order, so the PONG still proves each of them registered.
   */
  #flushAfterTurn(): Promise<void> {
    if (this.#nextFlush === null) {
      this.#nextFlush = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.#nextFlush = null;
        return this.#flushBounded();
      });
    }
    return this.#nextFlush;
  }

  #onMessage(stream: NatsLiveStream, subject: string, err: Error | null, msg: Msg): void {
    if (err) {
      this.#logger.warn?.('live subscription error', { subject, error: redactCredentials(errorText(err)) });
      return;
    }
    if (stream.isDone) return;
    let command: LiveRunCommand;
    try {
      command = decodeLivePayload(msg.data, msg.headers?.get(CONTENT_TYPE_HEADER));
    } catch (decodeErr) {
      // Never replied to: the producer times out and sees NoSubscriber, as upstream.
      this.#dropped++;
      this.#warnDropped(subject, decodeErr);
      return;
    }
    const entry: LiveRunCommandEntry = { command, receipt: new NatsLiveReceipt(msg, this.#logger) };
    if (!stream.push(entry)) {
      this.#overflowed++;
      this.#warnDropped(subject, new Error(`buffer full (${this.#maxBuffered} commands)`));
    }
  }

  #warnDropped(subject: string, err: unknown): void {
    this.#dropsSinceWarn++;
    const now = Date.now();
    if (now - this.#lastDropWarnAt < DROP_WARN_INTERVAL_MS) return;
    this.#logger.warn?.('dropped inbound live command', {
      subject,
      error: errorText(err),
      droppedSinceLastWarning: this.#dropsSinceWarn,
      malformedTotal: this.#dropped,
      overflowedTotal: this.#overflowed,
    });
    this.#lastDropWarnAt = now;
    this.#dropsSinceWarn = 0;
  }

  async #flushBounded(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
      timer.unref();
    });
    try {
      const flushed = this.#nc.flush().then(
        () => 'flushed' as const,
        (err: unknown) => {
          this.#logger.warn?.('live subscribe flush failed', { error: redactCredentials(errorText(err)) });
          return 'failed' as const;
        },
      );
      await Promise.race([flushed, gaveUp]);
    } finally {
      clearTimeout(timer);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw StorageError.io('live channel is closed');
  }
}

/** A subscription as an async iterator with a bounded buffer. Single logical consumer; `close` is idempotent. */
export class NatsLiveStream implements LiveRunCommandStream, AsyncIterator<LiveRunCommandEntry> {
  readonly #max: number;
  readonly #onClose: () => void;
  readonly #unsubscribe: (sub: Subscription) => Promise<void>;
  #buffer: LiveRunCommandEntry[] = [];
  #head = 0;
  #waiters: ((result: IteratorResult<LiveRunCommandEntry>) => void)[] = [];
  #sub: Subscription | null = null;
  #done = false;
  /** The first `close()`: later calls answer the same promise. */
  #closing: Promise<void> | null = null;

  constructor(maxBuffered: number, onClose: () => void, unsubscribe: (sub: Subscription) => Promise<void>) {
    this.#max = maxBuffered;
    this.#onClose = onClose;
    this.#unsubscribe = unsubscribe;
  }

  get isDone(): boolean {
    return this.#done;
  }

  attach(sub: Subscription): void {
    this.#sub = sub;
    // The connection closed (or the server revoked the subscription): end the iterator instead of hanging.
    void sub.closed.then(
      () => this.#end(),
      () => this.#end(),
    );
  }

  /** False when the buffer is full and the entry was dropped. */
  push(entry: LiveRunCommandEntry): boolean {
    if (this.#done) return true;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter({ value: entry, done: false });
      return true;
    }
    if (this.#buffer.length - this.#head >= this.#max) return false;
    this.#buffer.push(entry);
    return true;
  }

  next(): Promise<IteratorResult<LiveRunCommandEntry>> {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head] as LiveRunCommandEntry;
      this.#head++;
      if (this.#head > 64 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Leaving a `for await` loop early ends the stream, like dropping it upstream. */
  async return(): Promise<IteratorResult<LiveRunCommandEntry>> {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterator<LiveRunCommandEntry> {
    return this;
  }

  close(): Promise<void> {
    // Every caller waits for the same UNSUB: a request sent after any `close()` resolved is ordered behind it.
    if (this.#closing !== null) return this.#closing;
    if (this.#done) return Promise.resolve();
    const sub = this.#sub;
    this.#end();
    this.#closing = sub && !sub.isClosed() ? this.#unsubscribe(sub) : Promise.resolve();
    return this.#closing;
  }

  #end(): void {
    if (this.#done) return;
    this.#done = true;
    // Unread entries were never acked; their producers see NoSubscriber.
    this.#buffer = [];
    this.#head = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w({ value: undefined, done: true });
    this.#onClose();
  }
}

/** Ack = an empty reply. Best effort and idempotent, as upstream: a failed publish is only logged. */
export class NatsLiveReceipt implements LiveCommandReceipt {
  readonly #msg: Msg;
  readonly #logger: Logger;
  #acked = false;

  constructor(msg: Msg, logger: Logger) {
    this.#msg = msg;
    this.#logger = logger;
  }

  async ack(): Promise<void> {
    if (this.#acked) return;
    this.#acked = true;
    try {
      this.#msg.respond(Empty);
    } catch (err) {
      this.#logger.warn?.('live ack failed', { error: redactCredentials(errorText(err)) });
    }
  }

  /**
   * Not taken: an empty reply with status 503, the server's own "no responders" answer, which the nats.js
   * requester reports as `NoRespondersError` (so `NoSubscriber`) at once.
   */
  async reject(): Promise<void> {
    if (this.#acked) return;
    this.#acked = true;
    try {
      this.#msg.respond(Empty, { headers: headers(503, 'No Responders') });
    } catch (err) {
      this.#logger.warn?.('live reject failed', { error: redactCredentials(errorText(err)) });
    }
  }
}

/** nats.js reports "nobody listening" as a TimeoutError, or a RequestError caused by NoRespondersError (503). */
function meansNoSubscriber(err: unknown): boolean {
  if (err instanceof TimeoutError || err instanceof NoRespondersError) return true;
  if (err instanceof RequestError && err.isNoResponders()) return true;
  // By name too, in case a second copy of nats-core is loaded (instanceof would then fail).
  const names = new Set(['TimeoutError', 'NoResponders', 'NoRespondersError']);
  if (!(err instanceof Error)) return false;
  const cause = (err as { cause?: unknown }).cause;
  return names.has(err.name) || (cause instanceof Error && names.has(cause.name));
}

/** Strip `user:pass@` / `token@` from any URL in an error message. */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1***@');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function positiveInt(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw StorageError.validation(`${name} must be an integer in 1..=${max}`);
  }
  return value;
}

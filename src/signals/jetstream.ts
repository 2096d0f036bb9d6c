/**
 * Durable dispatch signals over a JetStream work queue, with the stream, consumer and subject layout of
 * upstream Awaken's NATS mailbox.
 *
 * Topology, one per namespace, created or verified at connect:
 *
 *   stream    `DISPATCH`, subjects `dispatch.>` without a namespace (byte-identical to upstream Awaken, so
 *             a Rust node and this package share signals); `AWAKEN_DISPATCH_<ns>`, subjects
 *             `<ns>.dispatch.>` with one.
 *   consumer  `dispatch-worker`: durable pull consumer shared by every node, so each signal reaches one puller.
 *
 * Stream settings:
 *   retention         WorkQueue   an acked signal is deleted; the stream only holds outstanding wake-ups.
 *   storage           File        (option `storage`) signals survive a nats-server restart.
 *   duplicate_window  120 s       (option `duplicateWindowMs`) upstream `dedup_window`; we publish no
 *                                 Nats-Msg-Id, so it only matters to upstream publishers sharing the stream.
 *   replicas          1           (option `replicas`: 3 on a NATS cluster, so the stream survives the loss of
 *                                 one server; an existing stream is updated in place).
 *   discard Old, no max age / message / byte limits: upstream leaves these at server defaults.
 *
 * Consumer settings:
 *   ack_policy        Explicit    a signal stays pending until the scheduler acked or nacked it.
 *   filter_subject    `<prefix>.>`  every signal of the namespace.
 *   ack_wait          30 s        (option `ackWaitMs`) an unacked delivery (crashed puller) comes back after it.
 *   max_deliver       -1          unlimited: a wake-up is never dropped for being redelivered often.
 *   max_ack_pending   10 000      upstream leaves 1000, but `filterSignals` holds a signal of a not yet
 *                                 available dispatch as a delayed NAK, and pending delayed NAKs count against
 *                                 this limit: 1000 future-dated dispatches would stall every other signal.
 *   deliver_policy All, replay_policy Instant (server defaults, as upstream).
 * An existing stream or consumer is reused: incompatible shapes (retention, subjects, push consumer, ack
 * policy, filter) fail connect with `Io`; ack_wait, max_deliver, max_ack_pending and duplicate_window are
 * updated in place; a different storage type is kept with a warning (it cannot change).
 *
 * Signal: subject `<prefix>.<hex thread>` (`h` + lowercase hex of the UTF-8 bytes, so ids cannot inject
 * tokens or wildcards), payload the raw UTF-8 dispatch id, no headers — upstream's format. A thread id whose
 * hex form would not fit a NATS control line (4 KiB) gets `s` + SHA-256 of that hex instead, with the hex in
 * an `Awaken-Thread` header (upstream stores never produce such ids).
 *
 * Publish (hot path): a core NATS publish onto the stream subject, with a reply subject on one shared inbox
 * where the PubAcks arrive asynchronously. No round trip per signal (measured on nats-server 2.9.10, 2 cores:
 * ~130k signals/s this way, ~25k/s with pipelined `js.publish`); nats.js coalesces writes per microtask. A
 * failed PubAck is logged (and a missing stream recreated); it never throws: the sweeper republishes any
 * Queued, available dispatch not signalled recently.
 *
 * Pull: one pull request (`$JS.API.CONSUMER.MSG.NEXT`) with `batch = max`, `expires` and `no_wait`. With both
 * set, nats-server (2.9+) answers as soon as at least one signal is available, with everything available up
 * to `max`, and otherwise ends the request with 408 after `expires`: one bounded request, no busy loop, and
 * no waiting for a full batch. (nats.js `consumer.fetch` waits for the full batch and refuses expires under
 * 1 s, which the signal loop's 500 ms needs.) Each pull has its own inbox subscription (SUB/UNSUB cost no
 * round trip): JetStream delivers with the signal's own subject, so only the subscription routes a reply.
 *
 * Receipt: `redeliveryAttempts()` is the JetStream delivered count (1 first); `ack` = `+ACK`, `nack` = `-NAK`,
 * `nackWithDelay(ms)` = `-NAK {"delay": ns}` (nats-server 2.7.1+), each a fire-and-forget publish on the
 * message's reply subject (a lost ack only means a harmless duplicate after ack_wait).
 */
import { createHash } from 'node:crypto';
import { createInbox, headers as natsHeaders } from '@nats-io/nats-core';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
} from '@nats-io/jetstream';
import type {
  ConsumerConfig,
  ConsumerInfo,
  JetStreamManager,
  StreamConfig,
  StreamInfo,
} from '@nats-io/jetstream';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import type { DispatchSignalReceipt } from '../contract/types.js';
import { decodeSegment, encodeSegment, idBytes } from '../live/subjects.js';
import { BoundedMap } from '../util/bounded-map.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { teardownWithRetry } from './teardown.js';
import type { RawSignal, SignalRef, SignalTransport } from './transport.js';

export const DEFAULT_ACK_WAIT_MS = 30_000;
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
export const SIGNAL_CONSUMER_NAME = 'dispatch-worker';
export const SIGNAL_MAX_ACK_PENDING = 10_000;
/** Header carrying the hex thread segment when the subject had to use its digest. */
export const THREAD_HEADER = 'Awaken-Thread';

const NAMESPACE_RE = /^[A-Za-z0-9_-]+$/;
const MAX_NAMESPACE_LENGTH = 64;
/** Longest signal subject; leaves room for `HPUB <subject> <reply> <hdr len> <total len>` in 4 KiB. */
const MAX_SIGNAL_SUBJECT_BYTES = 3840;
/** How long past `expires` a pull waits for the server's answer before giving up locally. */
const PULL_GRACE_MS = 2000;
/** Longest NAK delay we send (JetStream takes nanoseconds in an int64). */
const MAX_NAK_DELAY_MS = 365 * 24 * 3_600_000;
/** At most one warning per kind in this window; counters keep the totals. */
const WARN_INTERVAL_MS = 10_000;
/** Minimum gap between attempts to recreate a vanished stream or consumer. */
const REENSURE_INTERVAL_MS = 1000;
/** Pause before a suspected stranded consumer is checked again. */
const STRANDED_CONFIRM_MS = 500;
/** How often the consumer is checked against its stream besides every reconnect. */
const CONSUMER_CHECK_INTERVAL_MS = 30_000;
/** Attempts (a second apart) of the consumer check after a reconnect, while JetStream is still loading. */
const RECONNECT_CHECK_ATTEMPTS = 5;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export interface JetStreamSignalsOptions {
  /** An open connection; the transport never closes it (its owner does). */
  nc: NatsConnection;
  /** null = the upstream-compatible `DISPATCH` stream. */
  namespace: string | null;
  logger?: Logger;
  ackWaitMs?: number;
  duplicateWindowMs?: number;
  storage?: 'file' | 'memory';
  /** Copies of the signal stream on a NATS cluster: 1 (default) or 3. */
  replicas?: 1 | 3;
}

export type JetStreamSignals = SignalTransport & {
  /** Delete the namespace's stream and consumer, then close. Refuses without a namespace. */
  destroy(): Promise<void>;
  readonly streamName: string;
  readonly subjectPrefix: string;
};

/** `DISPATCH` without a namespace, `AWAKEN_DISPATCH_<ns>` with one. */
export function signalStreamName(namespace: string | null): string {
  return namespace === null ? 'DISPATCH' : `AWAKEN_DISPATCH_${checkNamespace(namespace)}`;
}

/** `dispatch` without a namespace, `<ns>.dispatch` with one. */
export function signalSubjectPrefix(namespace: string | null): string {
  return namespace === null ? 'dispatch' : `${checkNamespace(namespace)}.dispatch`;
}

/** The subject of a signal for `threadId` (and the header needed when the thread id is digested). */
export function signalSubject(prefix: string, threadId: string): { subject: string; threadHex?: string } {
  const segment = encodeSegment(threadId);
  if (prefix.length + 1 + segment.length <= MAX_SIGNAL_SUBJECT_BYTES)
    return { subject: `${prefix}.${segment}` };
  return { subject: `${prefix}.${digest(segment)}`, threadHex: segment };
}

function digest(segment: string): string {
  return `s${createHash('sha256').update(segment).digest('hex')}`;
}

function checkNamespace(namespace: unknown): string {
  if (
    typeof namespace !== 'string' ||
    !NAMESPACE_RE.test(namespace) ||
    namespace.length > MAX_NAMESPACE_LENGTH
  ) {
    throw StorageError.validation(`namespace must be 1..${MAX_NAMESPACE_LENGTH} letters, digits, "_" or "-"`);
  }
  return namespace;
}

function positiveMs(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_NAK_DELAY_MS) {
    throw StorageError.validation(`${name} must be a positive integer number of milliseconds`);
  }
  return value;
}

const nanos = (ms: number): number => ms * 1_000_000;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/**
 * The delivered count and the stream sequence in a JetStream ack subject, or null when `reply` is not one
 * (or carries no valid delivered count); `streamSeq` is 0 when missing or invalid.
 *   v1 `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens)
 *   v2 `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<rand>]`
 */
export function ackMetadata(reply: string): { delivered: number; streamSeq: number } | null {
  const tokens = reply.split('.');
  if (tokens[0] !== '$JS' || tokens[1] !== 'ACK') return null;
  const at = tokens.length === 9 ? 4 : tokens.length >= 11 ? 6 : -1;
  if (at < 0) return null;
  const positive = (text: string | undefined): number => {
    const n = Number(text);
    return Number.isSafeInteger(n) && n >= 1 ? n : 0;
  };
  const delivered = positive(tokens[at]);
  return delivered === 0 ? null : { delivered, streamSeq: positive(tokens[at + 1]) };
}

/** The stream sequence in a PubAck (`{"stream":"…","seq":N…}`), 0 if there is none. */
export function pubAckSeq(data: Uint8Array): number {
  const text = Buffer.from(data.buffer, data.byteOffset, data.length).toString('latin1');
  const at = text.indexOf('"seq":');
  if (at < 0) return 0;
  const n = Number.parseInt(text.slice(at + 6, at + 30), 10);
  return Number.isSafeInteger(n) && n >= 1 ? n : 0;
}

/** Create (or verify) the namespace's stream and consumer and return the transport. */
export async function createJetStreamSignals(opts: JetStreamSignalsOptions): Promise<JetStreamSignals> {
  if (!opts || typeof opts !== 'object') throw StorageError.validation('options must be an object');
  const { nc } = opts;
  if (!nc || typeof nc.publish !== 'function' || typeof nc.subscribe !== 'function') {
    throw StorageError.validation('nc must be a NatsConnection');
  }
  const namespace =
    opts.namespace === null || opts.namespace === undefined ? null : checkNamespace(opts.namespace);
  const storage = opts.storage ?? 'file';
  if (storage !== 'file' && storage !== 'memory')
    throw StorageError.validation('storage must be "file" or "memory"');
  const replicas = opts.replicas ?? 1;
  if (replicas !== 1 && replicas !== 3) throw StorageError.validation('replicas must be 1 or 3');
  const settings: Settings = {
    replicas,
    streamName: signalStreamName(namespace),
    subjectPrefix: signalSubjectPrefix(namespace),
    ackWaitMs: positiveMs('ackWaitMs', opts.ackWaitMs, DEFAULT_ACK_WAIT_MS),
    duplicateWindowMs: positiveMs('duplicateWindowMs', opts.duplicateWindowMs, DEFAULT_DUPLICATE_WINDOW_MS),
    storage,
  };
  const logger = opts.logger ?? silentLogger;
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
    await ensureTopology(jsm, settings, logger);
    await repairStrandedConsumer(jsm, settings, logger);
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw StorageError.io(`jetstream signals setup of ${settings.streamName} failed: ${errorText(err)}`);
  }
  return new JetStreamSignalTransport(nc, jsm, settings, namespace, logger);
}

interface Settings {
  replicas: 1 | 3;
  streamName: string;
  subjectPrefix: string;
  ackWaitMs: number;
  duplicateWindowMs: number;
  storage: 'file' | 'memory';
}

function wantedStream(s: Settings): Partial<StreamConfig> & { name: string } {
  return {
    name: s.streamName,
    subjects: [`${s.subjectPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: s.storage === 'file' ? StorageType.File : StorageType.Memory,
    duplicate_window: nanos(s.duplicateWindowMs),
    num_replicas: s.replicas,
    discard: DiscardPolicy.Old,
  };
}

function wantedConsumer(s: Settings): Partial<ConsumerConfig> {
  return {
    durable_name: SIGNAL_CONSUMER_NAME,
    ack_policy: AckPolicy.Explicit,
    filter_subject: `${s.subjectPrefix}.>`,
    ack_wait: nanos(s.ackWaitMs),
    max_deliver: -1,
    max_ack_pending: SIGNAL_MAX_ACK_PENDING,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
  };
}

/** Get-or-create the stream, then the consumer; verify an existing one and update what may change. */
async function ensureTopology(jsm: JetStreamManager, s: Settings, logger: Logger): Promise<void> {
  const stream = await ensureStream(jsm, s, logger);
  verifyStream(stream, s);
  const want = wantedStream(s);
  if (stream.config.duplicate_window !== want.duplicate_window) {
    await jsm.streams.update(s.streamName, { duplicate_window: want.duplicate_window });
    logger.info?.('jetstream signals: updated duplicate_window', { stream: s.streamName });
  }
  if (stream.config.num_replicas !== want.num_replicas) {
    await jsm.streams.update(s.streamName, { num_replicas: want.num_replicas });
    logger.info?.('jetstream signals: updated replicas', {
      stream: s.streamName,
      replicas: want.num_replicas,
    });
  }
  if (stream.config.storage !== want.storage) {
    logger.warn?.('jetstream signals: existing stream has a different storage type; keeping it', {
      stream: s.streamName,
      storage: stream.config.storage,
    });
  }
  const consumer = await ensureConsumer(jsm, s);
  verifyConsumer(consumer, s);
  const wc = wantedConsumer(s);
  const cc = consumer.config;
  if (
    cc.ack_wait !== wc.ack_wait ||
    cc.max_deliver !== wc.max_deliver ||
    cc.max_ack_pending !== wc.max_ack_pending
  ) {
    await jsm.consumers.update(s.streamName, SIGNAL_CONSUMER_NAME, {
      ack_wait: wc.ack_wait,
      max_deliver: wc.max_deliver,
      max_ack_pending: wc.max_ack_pending,
    });
    logger.info?.('jetstream signals: updated consumer limits', { stream: s.streamName });
  }
}

async function ensureStream(jsm: JetStreamManager, s: Settings, logger: Logger): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(s.streamName);
  } catch (err) {
    if (!isApiError(err, 10059)) throw err;
  }
  try {
    const info = await jsm.streams.add(wantedStream(s));
    logger.info?.('jetstream signals: created stream', { stream: s.streamName });
    return info;
  } catch (err) {
    // Another node may have created it between our info and add: read what is there now.
    try {
      return await jsm.streams.info(s.streamName);
    } catch {
      throw err;
    }
  }
}

async function ensureConsumer(jsm: JetStreamManager, s: Settings): Promise<ConsumerInfo> {
  try {
    return await jsm.consumers.info(s.streamName, SIGNAL_CONSUMER_NAME);
  } catch (err) {
    if (!isApiError(err, 10014)) throw err;
  }
  try {
    return await jsm.consumers.add(s.streamName, wantedConsumer(s));
  } catch (err) {
    try {
      return await jsm.consumers.info(s.streamName, SIGNAL_CONSUMER_NAME);
    } catch {
      throw err;
    }
  }
}

/**
 * Why the consumer cannot see some of the stream's messages, or null. After an unclean nats-server stop
 * (SIGKILL, power loss) the file store may come back without its last messages while the consumer's
 * persisted state still remembers them: new signals then reuse sequence numbers the consumer counts as
 * delivered or acked and are never delivered (seen with nats-server 2.9.10). Read the consumer before the
 * stream: its sequences can only have been in the stream already.
 */
export function strandedConsumerReason(consumer: ConsumerInfo, stream: StreamInfo): string | null {
  const st = stream.state;
  const delivered = consumer.delivered?.stream_seq ?? 0;
  const ackFloor = consumer.ack_floor?.stream_seq ?? 0;
  if (st.last_seq < delivered) {
    return `stream last sequence ${st.last_seq} is behind the consumer's delivered sequence ${delivered}`;
  }
  // In a work queue every acked message is deleted, so none may remain at or below the ack floor.
  if (st.messages > 0 && st.first_seq <= ackFloor) {
    return `message ${st.first_seq} is still in the stream at or below the consumer's ack floor ${ackFloor}`;
  }
  return null;
}

/**
 * Detect a consumer that lags behind its stream's real content (see `strandedConsumerReason`) and
 * recreate it, so every message left in the stream is delivered again (duplicates are harmless: signals
 * are filtered against the store). A suspicion is confirmed after a pause, so an ack whose deletion is
 * still in flight is not mistaken for a stranded message.
 */
async function repairStrandedConsumer(
  jsm: JetStreamManager,
  s: Settings,
  logger: Logger,
  knownReason?: string,
): Promise<void> {
  let reason = knownReason ?? null;
  if (reason === null) {
    const first = await jsm.consumers.info(s.streamName, SIGNAL_CONSUMER_NAME);
    if (strandedConsumerReason(first, await jsm.streams.info(s.streamName)) === null) return;
    await new Promise((r) => setTimeout(r, STRANDED_CONFIRM_MS).unref());
    const again = await jsm.consumers.info(s.streamName, SIGNAL_CONSUMER_NAME);
    const stream = await jsm.streams.info(s.streamName);
    // Keep the first ack floor: anything at or below it was acked a pause ago and must be gone by now.
    const floor = Math.min(first.ack_floor.stream_seq, again.ack_floor.stream_seq);
    reason = strandedConsumerReason(
      { ...again, ack_floor: { ...again.ack_floor, stream_seq: floor } },
      stream,
    );
    if (reason === null) return;
  }
  logger.warn?.('jetstream signals: consumer lags its stream (server lost state); recreating it', {
    stream: s.streamName,
    reason,
  });
  try {
    await jsm.consumers.delete(s.streamName, SIGNAL_CONSUMER_NAME);
  } catch (err) {
    // Another node may have deleted it first.
    if (!isApiError(err, 10014)) throw err;
  }
  await ensureConsumer(jsm, s);
}

function verifyStream(info: StreamInfo, s: Settings): void {
  const c = info.config;
  const subject = `${s.subjectPrefix}.>`;
  if (c.retention !== RetentionPolicy.Workqueue) {
    throw StorageError.io(`stream ${s.streamName} exists with retention ${c.retention}, expected workqueue`);
  }
  if (!(c.subjects ?? []).includes(subject)) {
    throw StorageError.io(`stream ${s.streamName} exists without subject ${subject}`);
  }
}

function verifyConsumer(info: ConsumerInfo, s: Settings): void {
  const c = info.config;
  const name = `${s.streamName}/${SIGNAL_CONSUMER_NAME}`;
  if (c.deliver_subject) throw StorageError.io(`consumer ${name} is a push consumer, expected pull`);
  if (c.ack_policy !== AckPolicy.Explicit) {
    throw StorageError.io(`consumer ${name} has ack policy ${c.ack_policy}, expected explicit`);
  }
  const filters = c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []);
  if (filters.length > 0 && !filters.includes(`${s.subjectPrefix}.>`)) {
    throw StorageError.io(`consumer ${name} filters ${filters.join(',')}, expected ${s.subjectPrefix}.>`);
  }
}

interface PendingPull {
  readonly max: number;
  readonly msgs: Msg[];
  timer: ReturnType<typeof setTimeout> | undefined;
  finish(error?: StorageError): void;
}

class JetStreamSignalTransport implements SignalTransport {
  readonly kind = 'jetstream' as const;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #settings: Settings;
  readonly #namespace: string | null;
  readonly #logger: Logger;
  readonly #nextSubject: string;
  readonly #pubAckInbox: string;
  readonly #pubAckSub: Subscription;
  readonly #pulls = new Set<PendingPull>();
  readonly #statusIter: AsyncIterable<unknown>;
  readonly #warnedAt = new Map<string, number>();
  #closed = false;
  #publishFailures = 0;
  /**
   * Publishes the server has not acknowledged yet, by reply token, oldest first. A reconnect replays them:
   * see `#replayUnacked`. Bounded memory: past capacity the oldest are forgotten (the sweeper still covers
   * them).
   */
  readonly #unacked = new BoundedMap<number, { ref: SignalRef; at: number }>(UNACKED_PUBLISH_CAPACITY);
  /** Checks for publishes that got no PubAck in time (lost on a dying socket or a dropped buffer). */
  #ackCheckTimer: ReturnType<typeof setInterval> | null = null;
  #publishSeq = 0;
  /** Signals whose publish the server refused (e.g. JetStream still loading after a restart), retried soon. */
  readonly #retryQueue: SignalRef[] = [];
  /** Refusals so far per dispatch id, while a retry is pending (bounded, removed on success or give-up). */
  readonly #retryCounts = new Map<string, number>();
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #lastEnsureAt = 0;
  #ensuring: Promise<void> | null = null;
  /** The consumer-vs-stream check in flight, if any (one at a time). */
  #checking: Promise<void> | null = null;
  /** A check requested while another was in flight: its retry budget (0 = none) and known cause. */
  #checkQueued: { attempts: number; reason?: string } = { attempts: 0 };
  /** Highest stream sequence seen in a PubAck or a delivery. */
  #highestSeq = 0;
  /**
   * `#highestSeq` at the last reconnect, until a PubAck proves the stream kept its sequence (or lost it):
   * a restarted server that hands out a sequence at or below it lost the stream's tail.
   */
  #seqAtReconnect = 0;
  #checkTimer: ReturnType<typeof setInterval>;
  #recheckTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    settings: Settings,
    ns: string | null,
    logger: Logger,
  ) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#settings = settings;
    this.#namespace = ns;
    this.#logger = logger;
    this.streamName = settings.streamName;
    this.subjectPrefix = settings.subjectPrefix;
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${settings.streamName}.${SIGNAL_CONSUMER_NAME}`;
    this.#pubAckInbox = createInbox();
    // One subscription for every PubAck; each publish replies to `<inbox>.<seq>` so its ack is matched.
    this.#pubAckSub = nc.subscribe(`${this.#pubAckInbox}.*`, {
      callback: (err, msg) => this.#onPubAck(err, msg),
    });
    // A disconnect drops the server's waiting pull requests: end ours now instead of at expires + grace.
    this.#statusIter = nc.status();
    void this.#watchStatus();
    this.#checkTimer = setInterval(() => this.#checkConsumer(1), CONSUMER_CHECK_INTERVAL_MS);
    this.#checkTimer.unref?.();
  }

  async publish(signals: readonly SignalRef[]): Promise<void> {
    if (this.#closed) {
      if (signals.length > 0) this.#warn('closed', 'jetstream signals: publish after close ignored');
      return;
    }
    for (const s of signals) {
      try {
        if (
          typeof s?.thread_id !== 'string' ||
          typeof s.dispatch_id !== 'string' ||
          s.dispatch_id.length === 0
        ) {
          throw new Error('signal needs a thread_id and a non-empty dispatch_id');
        }
        const { subject, threadHex } = signalSubject(this.#settings.subjectPrefix, s.thread_id);
        let hdrs: MsgHdrs | undefined;
        if (threadHex !== undefined) {
          hdrs = natsHeaders();
          hdrs.set(THREAD_HEADER, threadHex);
        }
        const seq = ++this.#publishSeq;
        this.#unacked.set(seq, { ref: s, at: Date.now() });
        this.#ensureAckCheck();
        this.#nc.publish(subject, idBytes(s.dispatch_id), {
          reply: `${this.#pubAckInbox}.${seq}`,
          headers: hdrs,
        });
      } catch (err) {
        this.#publishFailed(errorText(err));
      }
    }
  }

  async pull(max: number, expiresMs: number): Promise<RawSignal[]> {
    const batch = args.bounded('max', max, args.MAX_BATCH);
    const expires = args.bounded('expires', expiresMs, args.MAX_PULL_EXPIRES_MS);
    if (this.#closed) throw StorageError.io('jetstream signal transport is closed');
    if (batch === 0) return [];
    const msgs = await this.#fetch(batch, expires);
    return this.#toSignals(msgs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#ackCheckTimer !== null) clearInterval(this.#ackCheckTimer);
    this.#ackCheckTimer = null;
    clearInterval(this.#checkTimer);
    if (this.#recheckTimer !== null) clearTimeout(this.#recheckTimer);
    this.#recheckTimer = null;
    this.#retryQueue.length = 0;
    for (const pull of [...this.#pulls.values()]) pull.finish();
    const iter = this.#statusIter as { stop?: () => void };
    iter.stop?.();
    try {
      this.#pubAckSub.unsubscribe();
    } catch {
      /* the connection is already closed */
    }
    if (this.#publishFailures > 0) {
      this.#logger.warn?.('jetstream signals: publish failures during this session', {
        failures: this.#publishFailures,
      });
    }
  }

  async destroy(): Promise<void> {
    if (this.#namespace === null) {
      throw StorageError.validation('destroy() refuses to delete the shared DISPATCH stream: no namespace');
    }
    await this.close();
    await teardownWithRetry(
      `deleting consumer of ${this.streamName}`,
      () => this.#jsm.consumers.delete(this.streamName, SIGNAL_CONSUMER_NAME),
      (err) => isApiError(err, 10014) || isApiError(err, 10059),
    );
    await teardownWithRetry(
      `deleting ${this.streamName}`,
      () => this.#jsm.streams.delete(this.streamName),
      (err) => isApiError(err, 10059),
    );
  }

  /**
   * One pull request on its own inbox subscription (JetStream delivers with the signal's subject, so only
   * the subscription tells which pull a message belongs to). Resolves when the server ends the request,
   * the batch is full, the connection drops, or the transport closes.
   */
  #fetch(batch: number, expiresMs: number): Promise<Msg[]> {
    const inbox = createInbox();
    return new Promise<Msg[]>((resolve, reject) => {
      let sub: Subscription | null = null;
      const pull: PendingPull = {
        max: batch,
        msgs: [],
        timer: undefined,
        finish: (error) => {
          if (!this.#pulls.delete(pull)) return;
          clearTimeout(pull.timer);
          try {
            sub?.unsubscribe();
          } catch {
            /* the connection is already closed */
          }
          if (error) {
            this.#nakAll(pull.msgs);
            reject(error);
          } else if (this.#closed) {
            // Nobody will handle these: hand them back now rather than after ack_wait.
            this.#nakAll(pull.msgs);
            resolve([]);
          } else {
            resolve(pull.msgs);
          }
        },
      };
      this.#pulls.add(pull);
      pull.timer = setTimeout(() => pull.finish(), expiresMs + PULL_GRACE_MS);
      pull.timer.unref();
      const request: Record<string, unknown> = { batch, no_wait: true };
      if (expiresMs > 0) request.expires = nanos(expiresMs);
      try {
        sub = this.#nc.subscribe(inbox, { callback: (err, msg) => this.#onPullMsg(pull, err, msg) });
        this.#nc.publish(this.#nextSubject, encoder.encode(JSON.stringify(request)), { reply: inbox });
      } catch (err) {
        pull.finish(StorageError.io(`jetstream signal pull failed: ${errorText(err)}`));
      }
    });
  }

  #onPullMsg(pull: PendingPull, err: Error | null, msg: Msg): void {
    if (err) {
      this.#warn('pull-sub', 'jetstream signals: pull subscription error', { error: errorText(err) });
      pull.finish();
      return;
    }
    const live = this.#pulls.has(pull);
    const code = msg.data.length === 0 ? (msg.headers?.code ?? 0) : 0;
    if (code !== 0) {
      if (!live || code === 100) return; // late status, or an idle heartbeat
      if (code === 404 || code === 408) {
        pull.finish();
      } else if (code === 503) {
        this.#reensure();
        pull.finish(
          StorageError.io(`jetstream signal consumer ${this.streamName}/${SIGNAL_CONSUMER_NAME} unavailable`),
        );
      } else {
        this.#warn(`pull-${code}`, 'jetstream signals: pull ended by the server', {
          code,
          description: msg.headers?.description,
        });
        pull.finish();
      }
      return;
    }
    if (!live) {
      // Delivered after its pull ended: redeliver now instead of after ack_wait.
      this.#nakAll([msg]);
      return;
    }
    pull.msgs.push(msg);
    if (pull.msgs.length >= pull.max) pull.finish();
  }

  #toSignals(msgs: readonly Msg[]): RawSignal[] {
    const out: RawSignal[] = [];
    for (const msg of msgs) {
      const reply = msg.reply ?? '';
      const ack = ackMetadata(reply);
      if (ack === null) {
        this.#warn('no-ack-subject', 'jetstream signals: message without an ack subject skipped', {
          subject: msg.subject,
        });
        continue;
      }
      if (ack.streamSeq > this.#highestSeq) this.#highestSeq = ack.streamSeq;
      const receipt = new JetStreamReceipt(this.#nc, reply, ack.delivered);
      const decoded = this.#decode(msg);
      if (decoded === null) {
        // Unroutable or blank: nothing can act on it, so ack and drop (upstream does the same).
        void receipt.ack().catch(() => undefined);
        continue;
      }
      out.push({ ...decoded, receipt });
    }
    return out;
  }

  #decode(msg: Msg): SignalRef | null {
    let dispatchId: string;
    try {
      // UTF-8 (upstream's format); lone surrogates arrive as their WTF-8 bytes, as `publish` writes them.
      dispatchId = decodeSegment(
        `h${Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.length).toString('hex')}`,
      );
    } catch {
      this.#warn('bad-payload', 'jetstream signals: non-UTF-8 payload skipped', { subject: msg.subject });
      return null;
    }
    if (dispatchId.trim().length === 0) return null;
    const prefix = `${this.#settings.subjectPrefix}.`;
    const segment = msg.subject.startsWith(prefix) ? msg.subject.slice(prefix.length) : '';
    try {
      if (segment.startsWith('h')) return { thread_id: decodeSegment(segment), dispatch_id: dispatchId };
      const hex = msg.headers?.get(THREAD_HEADER) ?? '';
      if (segment.startsWith('s') && hex.startsWith('h') && digest(hex) === segment) {
        return { thread_id: decodeSegment(hex), dispatch_id: dispatchId };
      }
    } catch {
      // fall through to the warning below
    }
    this.#warn('bad-subject', 'jetstream signals: signal with an undecodable subject skipped', {
      subject: msg.subject.slice(0, 200),
    });
    return null;
  }

  #onPubAck(err: Error | null, msg: Msg): void {
    // The server answered: the publish leaves the reconnect-replay set either way.
    let ref: SignalRef | undefined;
    if (msg) {
      const seq = Number(msg.subject.slice(this.#pubAckInbox.length + 1));
      ref = this.#unacked.get(seq)?.ref;
      this.#unacked.delete(seq);
    }
    const failure = this.#pubAckFailure(err, msg);
    if (failure === null) {
      if (ref) this.#retryCounts.delete(ref.dispatch_id);
      this.#sawStreamSeq(pubAckSeq(msg.data));
      return;
    }
    this.#publishFailed(failure);
    if (ref) this.#retrySoon(ref);
  }

  /** Null for a stored message, else why the publish was refused. */
  #pubAckFailure(err: Error | null, msg: Msg): string | null {
    if (err) return errorText(err);
    const code = msg.data.length === 0 ? (msg.headers?.code ?? 0) : 0;
    if (code === 503) {
      // No responders: the stream is gone (deleted, or a server still loading or that lost its state).
      this.#reensure();
      return `no stream listens on ${this.#settings.subjectPrefix}.>`;
    }
    if (code !== 0) return `status ${code} ${msg.headers?.description ?? ''}`;
    // Fast path: `{"stream":"…","seq":…}`. Anything else is an API error object.
    if (msg.data[2] === 0x73 /* s */) return null;
    let text = '';
    try {
      text = strictUtf8.decode(msg.data);
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && !('error' in parsed)) return null;
    } catch {
      /* reported below */
    }
    return text.slice(0, 300);
  }

  #ensureAckCheck(): void {
    if (this.#ackCheckTimer !== null || this.#closed) return;
    this.#ackCheckTimer = setInterval(() => this.#retryUnackedInTime(), PUBACK_TIMEOUT_MS);
    this.#ackCheckTimer.unref?.();
  }

  /** Publishes older than PUBACK_TIMEOUT_MS without any answer are retried (connected or not). */
  #retryUnackedInTime(): void {
    const cutoff = Date.now() - PUBACK_TIMEOUT_MS;
    // Insertion order is publish order: stop at the first young entry.
    for (const [seq, u] of this.#unacked) {
      if (u.at > cutoff) break;
      this.#unacked.delete(seq);
      this.#retrySoon(u.ref);
    }
    if (this.#unacked.size === 0 && this.#retryQueue.length === 0 && this.#ackCheckTimer !== null) {
      clearInterval(this.#ackCheckTimer);
      this.#ackCheckTimer = null;
    }
  }

  /**
   * A refused publish (typically JetStream not ready right after a server restart) is retried a few times a
   * second apart; after that the sweeper's republish covers it. Bounded in count and memory.
   */
  #retrySoon(ref: SignalRef): void {
    const refusals = (this.#retryCounts.get(ref.dispatch_id) ?? 0) + 1;
    if (
      this.#closed ||
      refusals > MAX_PUBLISH_RETRIES ||
      this.#retryCounts.size >= UNACKED_PUBLISH_CAPACITY
    ) {
      this.#retryCounts.delete(ref.dispatch_id);
      return;
    }
    this.#retryCounts.set(ref.dispatch_id, refusals);
    this.#retryQueue.push(ref);
    if (this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.publish(this.#retryQueue.splice(0));
    }, PUBLISH_RETRY_DELAY_MS);
    this.#retryTimer.unref?.();
  }

  #publishFailed(detail: string): void {
    this.#publishFailures++;
    this.#warn('publish', 'jetstream signals: publish failed; the sweeper will republish', {
      detail,
      failures: this.#publishFailures,
    });
  }

  #nakAll(msgs: readonly Msg[]): void {
    for (const m of msgs) {
      if (!m.reply || this.#nc.isClosed()) continue;
      try {
        this.#nc.publish(m.reply, '-NAK');
      } catch {
        /* redelivered after ack_wait anyway */
      }
    }
  }

  /** Recreate a vanished stream/consumer in the background, at most once per second. */
  #reensure(): void {
    if (this.#closed || this.#ensuring || Date.now() - this.#lastEnsureAt < REENSURE_INTERVAL_MS) return;
    this.#lastEnsureAt = Date.now();
    this.#ensuring = ensureTopology(this.#jsm, this.#settings, this.#logger)
      .catch((err: unknown) => {
        this.#warn('ensure', 'jetstream signals: recreating the stream failed', { error: errorText(err) });
      })
      .finally(() => {
        this.#ensuring = null;
      });
  }

  async #watchStatus(): Promise<void> {
    try {
      for await (const s of this.#statusIter) {
        const type = (s as { type?: unknown }).type;
        if (type === 'disconnect' || type === 'reconnect') {
          for (const pull of [...this.#pulls.values()]) pull.finish();
        }
        if (type === 'reconnect') {
          this.#seqAtReconnect = this.#highestSeq;
          this.#replayUnacked();
          // A restarted server may have lost the stream's tail but not the consumer's state.
          this.#checkConsumer(RECONNECT_CHECK_ATTEMPTS);
        }
      }
    } catch {
      /* iterator ended with the connection */
    }
  }

  /**
   * Track the stream's sequence. The first PubAck after a reconnect tells whether the server kept the
   * stream's tail: a sequence at or below one already seen means it lost messages (unclean stop), and the
   * consumer's persisted state may then count the new messages reusing those sequences as delivered or
   * acked, so they would wait for ack_wait or forever. Recreate the consumer at once in that case.
   */
  #sawStreamSeq(seq: number): void {
    if (seq <= 0) return;
    if (this.#seqAtReconnect > 0) {
      const before = this.#seqAtReconnect;
      this.#seqAtReconnect = 0;
      if (seq <= before) {
        this.#checkConsumer(
          RECONNECT_CHECK_ATTEMPTS,
          `after a reconnect the stream stored a message at sequence ${seq}, at or below ${before} seen before`,
        );
      }
    }
    if (seq > this.#highestSeq) this.#highestSeq = seq;
  }

  /**
   * Check the consumer against its stream and recreate it if it cannot see some messages
   * (`repairStrandedConsumer`). Failures (JetStream still loading after a restart) are retried a second
   * apart up to `attempts` times; the periodic check covers the rest.
   */
  #checkConsumer(attempts: number, knownReason?: string): void {
    if (this.#closed) return;
    if (this.#checking !== null) {
      // Requested during a check: run another one after it, with the larger budget and any known cause.
      const q = this.#checkQueued;
      this.#checkQueued = { attempts: Math.max(q.attempts, attempts), reason: knownReason ?? q.reason };
      return;
    }
    this.#checking = repairStrandedConsumer(this.#jsm, this.#settings, this.#logger, knownReason)
      .catch((err: unknown) => {
        if (attempts > 1 && !this.#closed) {
          this.#recheckTimer = setTimeout(() => {
            this.#recheckTimer = null;
            this.#checkConsumer(attempts - 1, knownReason);
          }, REENSURE_INTERVAL_MS);
          this.#recheckTimer.unref?.();
        } else {
          this.#warn('consumer-check', 'jetstream signals: checking the consumer failed', {
            error: errorText(err),
          });
        }
      })
      .finally(() => {
        this.#checking = null;
        const queued = this.#checkQueued;
        this.#checkQueued = { attempts: 0 };
        if (queued.attempts > 0) this.#checkConsumer(queued.attempts, queued.reason);
      });
  }

  /**
   * nats.js drops core publishes made while disconnected or reconnecting (and whatever sat unflushed when
   * the socket died), without an error. Those dispatches are already marked signalled in Redis, so the
   * sweeper would only repeat them after its republish delay (30 s). On reconnect, publish again every
   * signal the server never acknowledged.
   */
  #replayUnacked(): void {
    const refs = [...this.#unacked.values()].map((u) => u.ref);
    this.#unacked.clear();
    if (refs.length === 0 || this.#closed) return;
    this.#logger.info?.('jetstream signals: republishing signals unacknowledged at a reconnect', {
      stream: this.streamName,
      count: refs.length,
    });
    void this.publish(refs);
  }

  #warn(kind: string, msg: string, fields?: Record<string, unknown>): void {
    const now = Date.now();
    if (now - (this.#warnedAt.get(kind) ?? 0) < WARN_INTERVAL_MS) return;
    this.#warnedAt.set(kind, now);
    this.#logger.warn?.(msg, { stream: this.streamName, ...fields });
  }
}

/** How many unacknowledged publishes are remembered for a replay after a reconnect (bounded memory). */
const UNACKED_PUBLISH_CAPACITY = 16_384;
/** A refused publish is retried this many times, this far apart, before it is left to the sweeper. */
const MAX_PUBLISH_RETRIES = 10;
const PUBLISH_RETRY_DELAY_MS = 1_000;
/** A publish with no PubAck after this long is treated as lost and retried. */
const PUBACK_TIMEOUT_MS = 2_000;

/** Settles once: the first of ack / nack / nackWithDelay wins, later calls are no-ops. */
class JetStreamReceipt implements DispatchSignalReceipt {
  readonly #nc: NatsConnection;
  readonly #reply: string;
  readonly #delivered: number;
  #settled = false;

  constructor(nc: NatsConnection, reply: string, delivered: number) {
    this.#nc = nc;
    this.#reply = reply;
    this.#delivered = delivered;
  }

  redeliveryAttempts(): number | null {
    return this.#delivered;
  }

  async ack(): Promise<void> {
    this.#send('+ACK');
  }

  async nack(): Promise<void> {
    this.#send('-NAK');
  }

  async nackWithDelay(delayMs: number): Promise<void> {
    const ms = Math.min(args.u64('delay_ms', delayMs), MAX_NAK_DELAY_MS);
    this.#send(ms === 0 ? '-NAK' : `-NAK {"delay":${nanos(ms)}}`);
  }

  #send(body: string): void {
    if (this.#settled) return;
    try {
      this.#nc.publish(this.#reply, body);
      this.#settled = true;
    } catch (err) {
      throw StorageError.io(`jetstream signal ${body.slice(0, 4)} failed: ${errorText(err)}`);
    }
  }
}

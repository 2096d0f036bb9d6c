/**
 * `RedisMailboxStore`: the MailboxStore of record on Redis.
 *
 * Every public method validates its arguments first (`args.*`), then makes ONE round trip: one EVALSHA of
 * a Lua script for every mutation and multi-key read, one plain command for single-key reads. Every
 * Redis call is bounded by `commandTimeoutMs` and fails with `Io` past it. Records read back are decoded
 * and validated; corrupt data raises `Serialization` naming the dispatch.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { ChainableCommander, Redis } from 'ioredis';
import { uuidV7 as uuidv7 } from '../util/uuid.js';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import { id, text, wellFormed } from './ids.js';
import { loadSignalTargets } from './signal-targets.js';
import {
  FUSED_STORE,
  HAND_BACK_STORE,
  type ClaimRef,
  type CompletedWithNext,
  type FusedMailboxStore,
  type HandBackMailboxStore,
  type NextClaim,
} from '../contract/fused.js';
import type { MailboxStore } from '../contract/store.js';
import {
  CANCEL_REQUEST_STORE,
  type CancelRequestMailboxStore,
  type RunControl,
} from '../contract/cancel-requests.js';
import {
  DEAD_LETTER_STORE,
  dispatchIdsArg,
  resetAttemptsArg,
  type DeadLetterMailboxStore,
  type RequeueDeadLetterOptions,
} from '../contract/dead-letters.js';
import { autoInstrumentStore } from '../metrics/store-metrics.js';
import type { IndexHeads, IndexHeadsProbe } from '../metrics/store-probe.js';
import type {
  DispatchSignalEntry,
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandStream,
  LiveRunTarget,
  MailboxInterrupt,
  MailboxInterruptDetails,
  RunDispatch,
  RunDispatchInput,
  RunDispatchResult,
  RunDispatchStatus,
} from '../contract/types.js';
import { RUN_DISPATCH_STATUSES, isTerminal } from '../contract/types.js';
import type { LiveChannel, ThreadRunsChannel, ThreadRunsLive } from '../live/channel.js';
import { filterSignals, type SignalTarget } from '../signals/filter.js';
import type { RawSignal, SignalRef, SignalTransport } from '../signals/transport.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { TurnBatcher, type Settlement } from '../util/turn-batcher.js';
import { redisIoError, toIoError } from './errors.js';
import type { RedisKeys } from './keys.js';
import { NoLiveChannel } from './no-live.js';
import type { SignalsMode } from './options.js';
import {
  enqueueArgs,
  pairsToObject,
  recordFromHash,
  SIGNAL_TARGET_FIELDS,
  signalTargetFromFields,
  terminationJson,
} from './record.js';
import type { ScriptName, ScriptRunner } from './scripts.js';
import { scriptError, unwrapReply } from './scripts.js';

/** A signal transport the store may also tear down with `destroyNamespace`. */
export type StoreSignalTransport = SignalTransport & { destroy?(): Promise<void> };

export interface Stoppable {
  stop(): Promise<void>;
  /** Run the next sweep within `delayMs` (see `SignalSweeper.soon`). */
  soon?(delayMs: number): void;
}

/**
 * Scripts whose purpose is to end a claim (`hand_off` in the prelude): with `quietClaimedThreads` and
 * JetStream, the thread's head is made due at once and published by a sweep run within `HAND_OFF_SWEEP_MS`.
 */
const HAND_OFF_SCRIPTS: ReadonlySet<ScriptName> = new Set<ScriptName>([
  'ack',
  'complete_and_ack',
  'nack',
  'dead_letter',
  'release_claim',
  'supersede_claimed',
  'reclaim_expired_leases',
]);
/** Scripts that end a claim only when they fail (a stale claim superseded) or, `extend_lease`, answer '0'. */
const HAND_OFF_ON_FAILURE: ReadonlySet<ScriptName> = new Set<ScriptName>([
  'extend_lease',
  'record_dispatch_start',
  'record_run_result',
]);
/** How soon the sweeper publishes a JetStream hand-off (calls within it share one sweep). */
export const HAND_OFF_SWEEP_MS = 10;

export interface RedisMailboxStoreParts {
  redis: Redis;
  scripts: ScriptRunner;
  keys: RedisKeys;
  signals: SignalsMode;
  transport: StoreSignalTransport | null;
  live: LiveChannel;
  commandTimeoutMs: number;
  republishAfterMs: number;
  /** See `CreateMailboxStoreOptions.quietClaimedThreads` (default false). */
  quietClaimedThreads?: boolean;
  /** Strings to redact from error messages (passwords, tokens). */
  secrets: readonly string[];
  logger?: Logger;
  /** Owned resources, released in reverse order after the transport and live channel on close. */
  release?: (() => Promise<void>)[];
  /** The NATS connection of the signals / live channel, if any (see `connections`). */
  nats?: NatsConnection | null;
  /** False for the per-partition stores behind a partitioned store, which is instrumented itself. */
  instrument?: boolean;
}

/** Terminal records deleted per purge script call, so one purge never blocks Redis for long. */
export const PURGE_BATCH = 1000;
/** Keys deleted per UNLINK during `destroyNamespace`. */
const DESTROY_SCAN_COUNT = 1000;

/** A caller-minted claim token (`HandBackMailboxStore`), or a fresh one. */
function claimTokenArg(claimToken: unknown, name = 'claim_token'): string {
  return claimToken === undefined ? uuidv7() : id(name, claimToken);
}

/**
 * Most enqueues one script call carries. Enqueues made in one turn of the event loop share a call: that
 * saved Redis ~30 % of an enqueue's CPU (its per-call part) in a loop of 20 000; a call blocks Redis while
 * it runs, so it stays short (~1.5 ms at 32).
 */
export const ENQUEUE_BATCH = 32;
/** Most chained completions (`completeAndClaimNext`) one script call carries; see `#callBatch`. */
export const COMPLETE_BATCH = 16;
/** The enqueue script's answer when it withheld the dispatch's signal (its thread holds a claim). */
const QUIET = 'quiet';

/**
 * The first argument of every prelude script: `1` when the scripts XADD Redis Streams signals, else `0`;
 * followed by `q` when an enqueue onto a thread that holds a claim gets no signal (`quietClaimedThreads`).
 */
export function signalFlags(signals: SignalsMode, quietClaimedThreads: boolean): string {
  return (signals === 'redis-streams' ? '1' : '0') + (quietClaimedThreads ? 'q' : '');
}

/** Claimed dispatches read per round trip by `listClaimedByRunId`. */
const CLAIMED_SCAN_BATCH = 500;

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw StorageError.serialization(`${what}: expected a string in the reply`);
  return value;
}

/** A claim token read back from Redis: what `args.id` accepts, else corrupt data (`Serialization`). */
function storedToken(value: string, what: string): string {
  try {
    return args.id(what, value);
  } catch (err) {
    throw StorageError.serialization(
      err instanceof StorageError ? err.message : `${what}: not a claim token`,
    );
  }
}

export class RedisMailboxStore
  implements
    MailboxStore,
    FusedMailboxStore,
    HandBackMailboxStore,
    DeadLetterMailboxStore,
    CancelRequestMailboxStore,
    IndexHeadsProbe
{
  readonly [FUSED_STORE] = true as const;
  readonly [HAND_BACK_STORE] = true as const;
  readonly [DEAD_LETTER_STORE] = true as const;
  readonly [CANCEL_REQUEST_STORE] = true as const;

  readonly #redis: Redis;
  readonly #scripts: ScriptRunner;
  readonly #keys: RedisKeys;
  readonly #signals: SignalsMode;
  readonly #transport: StoreSignalTransport | null;
  readonly #live: LiveChannel;
  /**
   * Whether live commands can reach this store's runs: false when it was created without NATS (deliveries
   * answer `NoSubscriber`, channels are empty streams), so a Mailbox opens no channel per run. A plain
   * property, not a getter over a private field, so that it reads the same through a `Proxy` of the store.
   */
  readonly liveCommands: boolean;
  readonly #timeoutMs: number;
  /** The connection times out every command within `#timeoutMs` itself (connections the store opened). */
  readonly #clientTimesOut: boolean;
  readonly #republishAfterMs: number;
  /** The scripts' first argument: see `signalFlags`. */
  readonly #signalFlags: string;
  readonly #secrets: readonly string[];
  readonly #logger: Logger;
  readonly #release: (() => Promise<void>)[];
  readonly #nats: NatsConnection | null;
  #sweeper: Stoppable | null = null;
  #sweeperStopped: Promise<void> | null = null;
  /** Set with `quietClaimedThreads` and JetStream: a call that may have ended a claim asks for a sweep. */
  #handOff: (() => void) | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #enqueues = new TurnBatcher<readonly string[], unknown[]>(
    (batch) => this.#callBatch('enqueue', 'enqueue_many', batch),
    ENQUEUE_BATCH,
  );
  readonly #completions = new TurnBatcher<readonly string[], unknown[]>(
    (batch) => this.#callBatch('complete_and_claim_next', 'complete_and_claim_next_many', batch),
    COMPLETE_BATCH,
    'iteration',
  );

  constructor(parts: RedisMailboxStoreParts) {
    this.#redis = parts.redis;
    this.#scripts = parts.scripts;
    this.#keys = parts.keys;
    this.#signals = parts.signals;
    this.#transport = parts.transport;
    this.#live = parts.live;
    this.liveCommands = !(parts.live instanceof NoLiveChannel);
    this.#timeoutMs = parts.commandTimeoutMs;
    const clientTimeout = (parts.redis.options as { commandTimeout?: unknown } | undefined)?.commandTimeout;
    this.#clientTimesOut =
      typeof clientTimeout === 'number' && clientTimeout > 0 && clientTimeout <= parts.commandTimeoutMs;
    this.#republishAfterMs = parts.republishAfterMs;
    this.#signalFlags = signalFlags(parts.signals, parts.quietClaimedThreads ?? false);
    this.#secrets = parts.secrets;
    this.#logger = parts.logger ?? silentLogger;
    this.#release = parts.release ?? [];
    this.#nats = parts.nats ?? null;
    // Metrics (src/metrics): only when an OpenTelemetry SDK is installed; otherwise nothing changes.
    if (parts.instrument !== false) autoInstrumentStore(this, 'redis', this.#keys.namespace);
  }

  /**
   * The connections this store runs on, for companions that share them (the lifecycle feed). They belong to
   * the store: never close them; they close with it.
   */
  get connections(): { redis: Redis; nats: NatsConnection | null } {
    return { redis: this.#redis, nats: this.#nats };
  }

  /** The key layout of this store's namespace. */
  get keys(): RedisKeys {
    return this.#keys;
  }

  get namespace(): string | null {
    return this.#keys.namespace;
  }

  get signalsMode(): SignalsMode {
    return this.#signals;
  }

  /** Attach the background sweeper (stopped by `close` / `destroyNamespace`). Used by `createMailboxStore`. */
  attachSweeper(sweeper: Stoppable): void {
    this.#sweeper = sweeper;
    this.handOffTo(sweeper);
  }

  /**
   * With `quietClaimedThreads` and JetStream, the scripts make the head of a thread whose claim ended due at
   * once instead of publishing it (Node publishes JetStream signals): `sweeper` is asked for a sweep soon
   * after every call that may have ended a claim. (A partitioned store points its partitions at its own.)
   */
  handOffTo(sweeper: Stoppable): void {
    const soon = sweeper.soon?.bind(sweeper);
    if (soon === undefined || this.#signals !== 'jetstream' || !this.#signalFlags.endsWith('q')) return;
    this.#handOff = () => soon(HAND_OFF_SWEEP_MS);
  }

  // ---- writes ----

  /**
   * Enqueues made in one turn of the event loop are sent together (`enqueue_many`) once the turn ends, so a
   * call made later in that turn without awaiting this one (a `cancel`, a `claim`) may reach Redis first:
   * await the enqueue before a call that depends on it.
   *
   * With `quietClaimedThreads`, a dispatch enqueued while its thread holds a claim gets no signal (the
   * script answers `quiet`): the claim's holder takes the thread's next dispatch in its chained completion,
   * and a claim that ends otherwise hands the thread off (its head is signalled).
   */
  async enqueue(dispatch: RunDispatchInput): Promise<void> {
    const d = args.dispatchForEnqueue(dispatch);
    for (const field of ['dispatch_id', 'thread_id', 'run_id', 'dedupe_key', 'last_error'] as const) {
      const value = d[field];
      if (value !== null) wellFormed(field, value);
    }
    const reply = await this.#enqueues.add(enqueueArgs(d));
    if (reply[0] === QUIET) return;
    await this.#published([{ thread_id: d.thread_id, dispatch_id: d.dispatch_id }]);
  }

  /**
   * The calls of one batch: alone, the script `single`; together, one call of `many` (see `each_call` in the
   * Lua prelude), which runs each as `single` would, in order, and answers each its own reply (a domain
   * error, or the Redis error that alone would have failed its call). Enqueues are gathered per turn of the
   * event loop, chained completions per iteration (runs end on their own timers and sockets, which one turn
   * never gathers).
   */
  async #callBatch(
    single: ScriptName,
    many: ScriptName,
    batch: readonly (readonly string[])[],
  ): Promise<Settlement<unknown[]>[]> {
    if (batch.length === 1) {
      try {
        return [{ ok: true, value: await this.#run(single, [], batch[0] as readonly string[]) }];
      } catch (error) {
        return [{ ok: false, error }];
      }
    }
    const argv: string[] = [];
    for (const one of batch) argv.push(String(one.length), ...one);
    const replies = await this.#run(many, [], argv);
    if (replies.length !== batch.length) {
      throw StorageError.serialization(`script ${many}: ${replies.length} replies for ${batch.length} calls`);
    }
    return replies.map((r) => {
      try {
        return { ok: true, value: this.#batchReply(single, r) };
      } catch (error) {
        return { ok: false, error };
      }
    });
  }

  /** One call's entry of a batch script's reply, as `#run` would answer that call made alone. */
  #batchReply(name: ScriptName, reply: unknown): unknown[] {
    if (Array.isArray(reply) && reply[0] === 'redis') {
      throw redisIoError(this.#redis, new Error(String(reply[1])), this.#secrets);
    }
    return unwrapReply(name, reply);
  }

  async claim(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    limit: number,
    claimToken?: string,
  ): Promise<RunDispatch[]> {
    const thread = id('thread_id', threadId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now, id);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const token = claimTokenArg(claimToken);
    const payload = await this.#run(
      'claim',
      [],
      [thread, consumer, token, String(now), String(leaseUntil), String(max)],
    );
    return payload.map((pairs) => this.#decodeFlat(pairs));
  }

  /** Fused `claim(.., 1)` + `recordDispatchStart` (src/contract/fused.ts): one script, one round trip. */
  async claimAndStart(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const thread = id('thread_id', threadId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now, id);
    const instance = id('dispatch_instance_id', dispatchInstanceId);
    const token = claimTokenArg(claimToken);
    const payload = await this.#run(
      'claim_and_start',
      [],
      [thread, consumer, token, String(now), String(leaseUntil), instance],
    );
    return payload.length === 0 ? null : this.#decodeFlat(payload[0]);
  }

  /** Fused `claimDispatch` + `recordDispatchStart` (src/contract/fused.ts): one script, one round trip. */
  async claimDispatchAndStart(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now, id);
    const instance = id('dispatch_instance_id', dispatchInstanceId);
    const token = claimTokenArg(claimToken);
    const payload = await this.#run(
      'claim_dispatch_and_start',
      [this.#keys.record(did)],
      [did, consumer, token, String(now), String(leaseUntil), instance],
    );
    return payload.length === 0 ? null : this.#decodeFlat(payload[0], did);
  }

  async claimDispatch(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now, id);
    const token = claimTokenArg(claimToken);
    const payload = await this.#run(
      'claim_dispatch',
      [this.#keys.record(did)],
      [did, consumer, token, String(now), String(leaseUntil)],
    );
    return payload.length === 0 ? null : this.#decodeFlat(payload[0], did);
  }

  async ack(dispatchId: string, claimToken: string, now: number): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    args.u64('now', now);
    await this.#run('ack', [this.#keys.record(did)], [did, token, String(now)]);
  }

  async recordDispatchStart(
    dispatchId: string,
    claimToken: string,
    dispatchInstanceId: string,
    now: number,
  ): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    const instance = id('dispatch_instance_id', dispatchInstanceId);
    args.u64('now', now);
    await this.#run('record_dispatch_start', [this.#keys.record(did)], [did, token, instance, String(now)]);
  }

  async recordRunResult(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    await this.#run('record_run_result', [], this.#resultArgs(dispatchId, claimToken, result, now));
  }

  /** Fused `recordRunResult` + `ack` (src/contract/fused.ts): one script, one round trip. */
  async completeAndAck(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    await this.#run('complete_and_ack', [], this.#resultArgs(dispatchId, claimToken, result, now));
  }

  /**
   * Fused `completeAndAck` + `claimAndStart` (src/contract/fused.ts): one script, one round trip. The chained
   * completions of one iteration of the event loop are sent together (`complete_and_claim_next_many`) at its
   * end; like `enqueue`, a call made meanwhile without awaiting this one may reach Redis first.
   */
  async completeAndClaimNext(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
    next: NextClaim,
  ): Promise<CompletedWithNext> {
    const resultArgs = this.#resultArgs(dispatchId, claimToken, result, now);
    const claim = args.nextClaim(next, now, id);
    const nextToken = claimTokenArg(next.claimToken, 'next.claim_token');
    let payload: unknown[];
    try {
      payload = await this.#completions.add([
        ...resultArgs,
        claim.threadId,
        claim.consumer,
        nextToken,
        String(claim.leaseUntil),
        claim.instance,
      ]);
    } catch (err) {
      this.#handOff?.();
      throw err;
    }
    // Nothing claimed: the completion ended the claim without the call taking the thread again.
    if (payload.length === 0 || payload[0] === 'claim-err') this.#handOff?.();
    if (payload.length === 0) return { next: null };
    if (payload[0] === 'claim-err') {
      const [, kind, detail] = payload;
      return { next: null, claimError: scriptError('complete_and_claim_next', kind, detail) };
    }
    return { next: this.#decodeFlat(payload[0]) };
  }

  /** Validated arguments of `record_run_result` (and of `complete_and_ack`, which takes the same). */
  #resultArgs(dispatchId: string, claimToken: string, result: RunDispatchResult, now: number): string[] {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    const r = args.runResult(result);
    args.u64('now', now);
    wellFormed('result.run_id', r.run_id);
    wellFormed('result.dispatch_instance_id', r.dispatch_instance_id);
    const optional = (name: string, value: string | null | undefined): string[] =>
      value == null ? ['0', ''] : ['1', wellFormed(name, value)];
    return [
      did,
      token,
      String(now),
      r.run_id,
      r.dispatch_instance_id,
      r.status,
      ...(r.termination ? ['1', terminationJson(r.termination)] : ['0', '']),
      ...optional('result.response', r.response),
      ...optional('result.error', r.error),
    ];
  }

  async nack(
    dispatchId: string,
    claimToken: string,
    retryAt: number,
    error: string,
    now: number,
  ): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    args.u64('retry_at', retryAt);
    const err = text('error', error);
    args.u64('now', now);
    const [status, thread] = await this.#run(
      'nack',
      [this.#keys.record(did)],
      [did, token, String(retryAt), err, String(now)],
    );
    if (status === 'Queued') await this.#published([{ thread_id: str(thread, 'nack'), dispatch_id: did }]);
  }

  async deadLetter(dispatchId: string, claimToken: string, error: string, now: number): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    const err = text('error', error);
    args.u64('now', now);
    await this.#run('dead_letter', [this.#keys.record(did)], [did, token, err, String(now)]);
  }

  async cancel(dispatchId: string, now: number): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    args.u64('now', now);
    const payload = await this.#run('cancel', [this.#keys.record(did)], [did, String(now)]);
    return payload.length === 0 ? null : this.#decodeFlat(payload[0], did);
  }

  /** Hand a claim back without costing an attempt (`HandBackMailboxStore`, src/contract/fused.ts). */
  async releaseClaim(ref: ClaimRef, claimToken: string, now: number): Promise<RunDispatch[]> {
    if (typeof ref !== 'object' || ref === null) throw StorageError.validation('ref must be an object');
    const r = ref as { dispatchId?: unknown; threadId?: unknown };
    let call: [string, string, string];
    if (r.dispatchId !== undefined && r.threadId === undefined) {
      const did = id('ref.dispatch_id', r.dispatchId);
      call = ['dispatch', did, this.#keys.record(did)];
    } else if (r.threadId !== undefined && r.dispatchId === undefined) {
      const thread = id('ref.thread_id', r.threadId);
      call = ['thread', thread, this.#keys.byStatus('Claimed', thread)];
    } else {
      throw StorageError.validation('ref must name exactly one of dispatchId or threadId');
    }
    const token = id('claim_token', claimToken);
    args.u64('now', now);
    const [mode, target, key] = call;
    const payload = await this.#run('release_claim', [key], [mode, target, token, String(now)]);
    const released = payload.map((pairs) => this.#decodeFlat(pairs));
    await this.#published(
      released
        .filter((d) => d.status === 'Queued')
        .map((d) => ({ thread_id: d.thread_id, dispatch_id: d.dispatch_id })),
    );
    return released;
  }

  /**
   * The Claimed dispatches of `runId` (`HandBackMailboxStore`): the lease index read in pages, each page's
   * `run_id` fields in one pipeline, the matching records loaded and decoded.
   */
  async listClaimedByRunId(runId: string, limit: number): Promise<RunDispatch[]> {
    const run = id('run_id', runId);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    if (max === 0) return [];
    const matches: string[] = [];
    for (let start = 0; matches.length < max; start += CLAIMED_SCAN_BATCH) {
      const ids = await this.#io(() =>
        this.#redis.zrange(this.#keys.leases, String(start), String(start + CLAIMED_SCAN_BATCH - 1)),
      );
      if (ids.length === 0) break;
      const runIds = await this.#io(async () => {
        const pipeline = this.#redis.pipeline();
        for (const did of ids) pipeline.hget(this.#keys.record(did), 'run_id');
        return (await pipeline.exec()) ?? [];
      });
      ids.forEach((did, i) => {
        const [err, value] = runIds[i] ?? [null, null];
        if (!err && value === run && matches.length < max) matches.push(did);
      });
      if (ids.length < CLAIMED_SCAN_BATCH) break;
    }
    const records = await this.loadDispatches(matches);
    return records.filter((d): d is RunDispatch => d !== null && d.status === 'Claimed' && d.run_id === run);
  }

  async extendLease(
    dispatchId: string,
    claimToken: string,
    extensionMs: number,
    now: number,
  ): Promise<boolean> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    args.u64('extension_ms', extensionMs);
    args.u64('now', now);
    const leaseUntil = args.deadline(now, extensionMs, 'extension_ms');
    const [extended] = await this.#run(
      'extend_lease',
      [this.#keys.record(did)],
      [did, token, String(leaseUntil), String(now)],
    );
    return extended === '1';
  }

  async interrupt(threadId: string, now: number): Promise<MailboxInterrupt> {
    const { new_dispatch_epoch, active_dispatch, superseded_count } = await this.interruptDetailed(
      threadId,
      now,
    );
    return { new_dispatch_epoch, active_dispatch, superseded_count };
  }

  async interruptDetailed(threadId: string, now: number): Promise<MailboxInterruptDetails> {
    const thread = id('thread_id', threadId);
    args.u64('now', now);
    const k = this.#keys;
    const [epoch, active, ...superseded] = await this.#run(
      'interrupt',
      [k.thread(thread), k.byStatus('Queued', thread), k.byStatus('Claimed', thread)],
      [thread, String(now)],
    );
    const newEpoch = this.#int(epoch, `thread '${thread}': epoch`);
    const activeDispatch = Array.isArray(active) && active.length > 0 ? this.#decodeFlat(active) : null;
    const supersededDispatches = superseded.map((pairs) => this.#decodeFlat(pairs));
    return {
      new_dispatch_epoch: newEpoch,
      active_dispatch: activeDispatch,
      superseded_count: supersededDispatches.length,
      superseded_dispatches: supersededDispatches,
    };
  }

  async currentDispatchEpoch(threadId: string): Promise<number> {
    const thread = id('thread_id', threadId);
    const epoch = await this.#io(() => this.#redis.hget(this.#keys.thread(thread), 'epoch'));
    return epoch === null ? 0 : this.#int(epoch, `thread '${thread}': epoch`);
  }

  /** Ask the run holding this claim to stop (`CancelRequestMailboxStore`, src/contract/cancel-requests.ts). */
  async requestRunCancel(dispatchId: string, claimToken: string): Promise<boolean> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    const payload = await this.#run('request_run_cancel', [this.#keys.record(did)], [did, token]);
    return payload[0] === '1';
  }

  /** The thread's epoch and latest cancel request, in one read (`CancelRequestMailboxStore`). */
  async readRunControl(threadId: string): Promise<RunControl> {
    const thread = id('thread_id', threadId);
    const [epoch, cancel] = await this.#io(() =>
      this.#redis.hmget(this.#keys.thread(thread), 'epoch', 'cancel'),
    );
    return {
      epoch: epoch == null ? 0 : this.#int(epoch, `thread '${thread}': epoch`),
      cancelToken: cancel == null ? null : storedToken(cancel, `thread '${thread}': cancel`),
    };
  }

  async supersedeClaimed(
    dispatchId: string,
    claimToken: string,
    now: number,
    reason: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    const token = id('claim_token', claimToken);
    args.u64('now', now);
    const why = text('reason', reason);
    const payload = await this.#run(
      'supersede_claimed',
      [this.#keys.record(did)],
      [did, token, String(now), why],
    );
    return payload.length === 0 ? null : this.#decodeFlat(payload[0], did);
  }

  // ---- dead letters (src/contract/dead-letters.ts) ----

  async requeueDeadLetter(
    dispatchId: string,
    now: number,
    options?: RequeueDeadLetterOptions,
  ): Promise<RunDispatch> {
    const did = id('dispatch_id', dispatchId);
    args.u64('now', now);
    const reset = resetAttemptsArg(options);
    const payload = await this.#run(
      'requeue_dead_letter',
      [this.#keys.record(did)],
      [did, String(now), reset ? '1' : '0'],
    );
    const requeued = this.#decodeFlat(payload[0], did);
    await this.#published([{ thread_id: requeued.thread_id, dispatch_id: did }]);
    return requeued;
  }

  async purgeDeadLetters(dispatchIds: readonly string[]): Promise<number> {
    const ids = dispatchIdsArg(dispatchIds, id);
    if (ids.length === 0) return 0;
    const [deleted] = await this.#run('purge_dead_letters', [], ids);
    return this.#int(deleted, 'purge count');
  }

  // ---- metrics probe (src/metrics/store-probe.ts) ----

  /** The heads of the lease and due indexes, one pipelined read (src/metrics/store-probe.ts). */
  async probeIndexHeads(): Promise<IndexHeads> {
    const k = this.#keys;
    const [lease, due] = await this.#io(() =>
      Promise.all([
        this.#redis.zrange(k.leases, '0', '0', 'WITHSCORES'),
        this.#signals === 'none' ? Promise.resolve([]) : this.#redis.zrange(k.due, '0', '0', 'WITHSCORES'),
      ]),
    );
    const head = (entry: string[]): number | null =>
      entry.length < 2 ? null : this.#int(entry[1], 'index score');
    return { oldestLeaseUntil: head(lease), earliestSignalDue: head(due) };
  }

  // ---- reads ----

  async loadDispatch(dispatchId: string): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    const fields = await this.#io(() => this.#redis.hgetall(this.#keys.record(did)));
    return Object.keys(fields).length === 0 ? null : recordFromHash(did, fields);
  }

  async listDispatches(
    threadId: string,
    statusFilter: readonly RunDispatchStatus[] | null,
    limit: number,
    offset: number,
  ): Promise<RunDispatch[]> {
    const thread = id('thread_id', threadId);
    const filter = args.statusFilter(statusFilter);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const skip = args.bounded('offset', offset, args.MAX_OFFSET);
    const statuses = filter === null ? [...RUN_DISPATCH_STATUSES] : [...new Set(filter)];
    if (statuses.length === 0 || max === 0) return [];
    const payload = await this.#run(
      'list_dispatches',
      statuses.map((s) => this.#keys.byStatus(s, thread)),
      [String(max), String(skip), ...statuses],
    );
    const out: RunDispatch[] = [];
    for (let i = 0; i < payload.length; i += 2) {
      const expected = payload[i];
      const d = this.#decodeIndexed(payload[i + 1], `the ${String(expected)} set of thread '${thread}'`);
      if (d.status !== expected || d.thread_id !== thread) {
        throw StorageError.serialization(
          `dispatch '${d.dispatch_id}': indexed as ${String(expected)} on thread '${thread}' but the record is ${d.status} on thread '${d.thread_id}'`,
        );
      }
      out.push(d);
    }
    return out;
  }

  async countDispatchesByStatus(status: RunDispatchStatus): Promise<number> {
    const s = args.status('status', status);
    const count = await this.#io(() => this.#redis.hget(this.#keys.counts, s));
    return count === null ? 0 : this.#int(count, `status count ${s}`);
  }

  async listTerminalDispatches(limit: number, offset: number): Promise<RunDispatch[]> {
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const skip = args.bounded('offset', offset, args.MAX_OFFSET);
    if (max === 0) return [];
    const payload = await this.#run('list_terminal_dispatches', [], [String(max), String(skip)]);
    return payload.map((pairs) => {
      const d = this.#decodeIndexed(pairs, 'the terminal index');
      if (!isTerminal(d.status)) {
        throw StorageError.serialization(
          `dispatch '${d.dispatch_id}': indexed as terminal but the record is ${d.status}`,
        );
      }
      return d;
    });
  }

  async reclaimExpiredLeases(now: number, limit: number): Promise<RunDispatch[]> {
    args.u64('now', now);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    if (max === 0) return [];
    const payload = await this.#run('reclaim_expired_leases', [], [String(now), String(max)]);
    const reclaimed = payload.map((pairs) => this.#decodeFlat(pairs));
    await this.#published(
      reclaimed
        .filter((d) => d.status === 'Queued')
        .map((d) => ({ thread_id: d.thread_id, dispatch_id: d.dispatch_id })),
    );
    return reclaimed;
  }

  /**
   * Deletes in batches of `PURGE_BATCH` records (one script each) so a large purge never blocks Redis:
   * one round trip unless more than a batch is due. Each batch is atomic on its own.
   */
  async purgeTerminal(olderThan: number): Promise<number> {
    args.u64('older_than', olderThan);
    let total = 0;
    for (;;) {
      const [deleted, more] = await this.#run('purge_terminal', [], [String(olderThan), String(PURGE_BATCH)]);
      total += this.#int(deleted, 'purge count');
      if (more !== '1') return total;
    }
  }

  async queuedThreadIds(): Promise<string[]> {
    const threads = await this.#io(() => this.#redis.zrange(this.#keys.queuedThreads, '0', '-1'));
    // Sorted in JS (UTF-16 code unit order), like the memory store, rather than Redis byte order.
    return threads.sort();
  }

  // ---- signals ----

  supportsDispatchSignals(): boolean {
    return this.#signals !== 'none';
  }

  async pullDispatchSignals(max: number, expiresMs: number): Promise<DispatchSignalEntry[]> {
    const count = args.bounded('max', max, args.MAX_BATCH);
    const expires = args.bounded('expires_ms', expiresMs, args.MAX_PULL_EXPIRES_MS);
    const transport = this.#transport;
    if (transport === null || count === 0) return [];
    this.assertUsable();
    let raw;
    try {
      raw = await transport.pull(count, expires);
    } catch (err) {
      throw toIoError('signals', err, this.#secrets);
    }
    this.notePulledSignals(raw);
    return filterSignals(
      raw,
      (ids) => loadSignalTargets(ids, (valid) => this.loadSignalRecords(valid), this.#logger),
      Date.now(),
    );
  }

  /** Throws `Io` once the store is closed. A subclass with state of its own to check extends it. */
  protected assertUsable(): void {
    this.#assertOpen();
  }

  /** What a subclass learns from pulled signals before their records are loaded (nothing here). */
  protected notePulledSignals(_signals: readonly RawSignal[]): void {}

  /**
   * The records behind pulled signals, in order, as far as the filter reads them (one HMGET each, not the
   * whole hash: nearly every signal names a dispatch a chained claim already took); a corrupt one comes back
   * as its `Serialization` error.
   */
  protected loadSignalRecords(ids: readonly string[]): Promise<(SignalTarget | StorageError | null)[]> {
    return this.#readEach(
      ids,
      (pipeline, key) => pipeline.hmget(key, ...SIGNAL_TARGET_FIELDS),
      (did, values) => signalTargetFromFields(did, (values ?? []) as (string | null)[]),
    );
  }

  /**
   * The sweeper's query (so a lost signal never strands work): up to `limit` Queued dispatches with
   * available_at <= now whose last signal is older than the republish delay are marked signalled at `now`
   * (next due at `now + republishAfterMs`) and returned; with Redis Streams the same script XADDs their signals.
   */
  async sweepDueSignals(now: number, republishAfterMs: number, limit: number): Promise<SignalRef[]> {
    args.u64('now', now);
    args.u64('republish_after_ms', republishAfterMs);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    args.deadline(now, republishAfterMs, 'republish_after_ms');
    if (max === 0) return [];
    const payload = await this.#run(
      'sweep_due_signals',
      [],
      [String(now), String(republishAfterMs), String(max)],
    );
    const refs: SignalRef[] = [];
    for (let i = 0; i < payload.length; i += 2) {
      refs.push({ thread_id: str(payload[i], 'sweep'), dispatch_id: str(payload[i + 1], 'sweep') });
    }
    return refs;
  }

  /** Load many records in one round trip (a pipeline of HGETALL); missing ones are null. */
  async loadDispatches(dispatchIds: readonly string[]): Promise<(RunDispatch | null)[]> {
    const ids = dispatchIds.map((d, i) => id(`dispatch_ids.${i}`, d));
    return (await this.#loadMany(ids)).map((r) => {
      if (r instanceof StorageError) throw r;
      return r;
    });
  }

  /** One pipeline of HGETALL; a record that fails to decode comes back as its Serialization error. */
  #loadMany(ids: readonly string[]): Promise<(RunDispatch | StorageError | null)[]> {
    return this.#readEach(
      ids,
      (pipeline, key) => pipeline.hgetall(key),
      (did, fields) => {
        const obj = (fields ?? {}) as Record<string, string>;
        return Object.keys(obj).length === 0 ? null : recordFromHash(did, obj);
      },
    );
  }

  /**
   * One pipeline with one read of each id's record (`read`); each reply goes through `decode`, whose
   * `StorageError` (a corrupt record) comes back in that id's place. A connection error throws.
   */
  async #readEach<T>(
    ids: readonly string[],
    read: (pipeline: ChainableCommander, key: string) => unknown,
    decode: (dispatchId: string, reply: unknown) => T,
  ): Promise<(T | StorageError)[]> {
    if (ids.length === 0) return [];
    const results = await this.#io(async () => {
      const pipeline = this.#redis.pipeline();
      for (const did of ids) read(pipeline, this.#keys.record(did));
      return (await pipeline.exec()) ?? [];
    });
    return ids.map((did, i) => {
      const [err, reply] = results[i] ?? [new Error('missing pipeline reply'), null];
      if (err) throw redisIoError(this.#redis, err, this.#secrets);
      try {
        return decode(did, reply);
      } catch (decodeErr) {
        if (decodeErr instanceof StorageError) return decodeErr;
        throw decodeErr;
      }
    });
  }

  // ---- live ----

  deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    return this.#live.deliverLive(threadId, command);
  }

  deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    return this.#live.deliverLiveTo(target, command);
  }

  openLiveChannel(threadId: string): Promise<LiveRunCommandStream> {
    return this.#live.openLiveChannel(threadId);
  }

  openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    return this.#live.openLiveChannelFor(target);
  }

  /**
   * One subscription for the runs of `threadId` this node executes in a row (see `ThreadRunsLive`); null when
   * the live channel has no such mode (no NATS): the Mailbox then opens each run's channel on its own.
   */
  async openThreadRuns(threadId: string, holdsThread: () => boolean): Promise<ThreadRunsLive | null> {
    const live = this.#live as Partial<ThreadRunsChannel>;
    if (typeof live.openThreadRuns !== 'function') return null;
    return live.openThreadRuns(threadId, holdsThread);
  }

  // ---- lifecycle ----

  /**
   * Delete every Redis key of this namespace (SCAN + UNLINK) and the transport's server-side state
   * (JetStream stream and consumer). Stops the sweeper first; refuses without a namespace. For tests and
   * teardown: call `close()` afterwards.
   */
  async destroyNamespace(): Promise<void> {
    if (this.#keys.namespace === null) {
      throw StorageError.validation(
        'destroyNamespace needs a namespace (refusing to delete the default one)',
      );
    }
    this.#assertOpen();
    await this.#stopSweeper();
    if (this.#transport?.destroy) {
      try {
        await this.#transport.destroy();
      } catch (err) {
        throw toIoError('signals', err, this.#secrets);
      }
    }
    let cursor = '0';
    do {
      const [next, batch] = await this.#io(() =>
        this.#redis.scan(cursor, 'MATCH', this.#keys.pattern, 'COUNT', String(DESTROY_SCAN_COUNT)),
      );
      cursor = next;
      if (batch.length > 0) await this.#io(() => this.#redis.unlink(...batch));
    } while (cursor !== '0');
  }

  /** Stop the sweeper, close live and transport, then the connections this store owns. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const steps: [string, () => Promise<void>][] = [
      ['sweeper', () => this.#stopSweeper()],
      [
        'store',
        async () => {
          this.#closed = true;
        },
      ],
      ['live', () => this.#live.close()],
      ['signals', () => this.#transport?.close() ?? Promise.resolve()],
      ...[...this.#release].reverse().map((fn, i): [string, () => Promise<void>] => [`connection ${i}`, fn]),
    ];
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.#logger.warn?.('error while closing the mailbox store', {
          part: what,
          error: toIoError('close', err, this.#secrets).message,
        });
      }
    }
  }

  #stopSweeper(): Promise<void> {
    if (this.#sweeper === null) return Promise.resolve();
    this.#sweeperStopped ??= this.#sweeper.stop();
    return this.#sweeperStopped;
  }

  // ---- plumbing ----

  #assertOpen(): void {
    if (this.#closed) throw StorageError.io('mailbox store is closed');
  }

  /** Run one Redis operation within the command timeout; any failure becomes `Io` (secrets redacted). */
  async #io<T>(operation: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    if (this.#clientTimesOut) {
      // The connection's own commandTimeout bounds every command: a second timer per call was measurable
      // CPU on the hot path (a timer + a race per store call).
      try {
        return await operation();
      } catch (err) {
        const timedOut = err instanceof Error && err.message === 'Command timed out';
        throw redisIoError(
          this.#redis,
          timedOut ? StorageError.io(`redis: no reply within ${this.#timeoutMs} ms`) : err,
          this.#secrets,
        );
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(StorageError.io(`redis: no reply within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([operation(), deadline]);
    } catch (err) {
      throw redisIoError(this.#redis, err, this.#secrets);
    } finally {
      clearTimeout(timer);
    }
  }

  async #run(
    name: ScriptName,
    extraKeys: readonly string[],
    scriptArgs: readonly string[],
  ): Promise<unknown[]> {
    const keys = [this.#keys.prefix, ...extraKeys];
    const flags = [this.#signalFlags, String(Date.now()), String(this.#republishAfterMs)];
    let handOff = HAND_OFF_SCRIPTS.has(name);
    try {
      const reply = await this.#io(() => this.#scripts.eval(name, keys, [...flags, ...scriptArgs]));
      const payload = unwrapReply(name, reply);
      if (name === 'extend_lease' && payload[0] !== '1') handOff = true;
      return payload;
    } catch (err) {
      if (HAND_OFF_ON_FAILURE.has(name)) handOff = true;
      throw err;
    } finally {
      if (handOff) this.#handOff?.();
    }
  }

  /** JetStream: publish wake-ups for writes that made dispatches claimable. Best effort, never fails the write. */
  async #published(refs: readonly SignalRef[]): Promise<void> {
    if (this.#signals !== 'jetstream' || this.#transport === null || refs.length === 0) return;
    try {
      await this.#transport.publish(refs);
    } catch (err) {
      this.#logger.warn?.('dispatch signal publish failed; the sweeper will republish', {
        error: toIoError('signals', err, this.#secrets).message,
        dispatches: refs.map((r) => r.dispatch_id),
      });
    }
  }

  #int(value: unknown, what: string): number {
    if (typeof value === 'string' && /^\d{1,16}$/.test(value)) {
      const n = Number(value);
      if (Number.isSafeInteger(n)) return n;
    }
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    throw StorageError.serialization(`${what}: not a non-negative safe integer`);
  }

  /** Decode a record a script returned (its `flat()`); `expectedId` when the caller knows it. */
  #decodeFlat(pairs: unknown, expectedId?: string): RunDispatch {
    const fields = pairsToObject(expectedId ?? '?', pairs);
    const did = expectedId ?? fields.dispatch_id;
    if (did === undefined)
      throw StorageError.serialization('script reply holds a record without dispatch_id');
    return recordFromHash(did, fields);
  }

  /** Decode a record found through an index; a lone `dispatch_id` means the index points at nothing. */
  #decodeIndexed(pairs: unknown, where: string): RunDispatch {
    const fields = pairsToObject('?', pairs);
    const did = fields.dispatch_id;
    if (did === undefined) throw StorageError.serialization(`${where}: entry without dispatch_id`);
    if (Object.keys(fields).length === 1) {
      throw StorageError.serialization(`dispatch '${did}': indexed in ${where} but the record is missing`);
    }
    return recordFromHash(did, fields);
  }
}

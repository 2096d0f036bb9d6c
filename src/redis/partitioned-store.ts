/**
 * `PartitionedRedisMailboxStore`: one namespace spread over N partitions (N hash tags, so N Redis Cluster
 * slots), built from N per-partition `RedisMailboxStore`s that share one connection. It is also the store for
 * any Redis Cluster connection (even with one partition) and for `durability: 'replicated'`.
 *
 * - Thread-addressed methods go to the thread's partition (`partitionOf`): one script, one slot, exactly
 *   as on a single partition.
 * - Dispatch-addressed methods find the dispatch's partition through the route cache, the dispatch
 *   directory, or, rarely, a probe of every partition (see src/redis/partitions.ts), then run there.
 * - Namespace-wide methods fan out and merge in contract order. Those with a limit (and offset) first read
 *   the heads of each partition's ordered index (lease, due, terminal), merge them to learn how many entries
 *   of the global window each partition holds, then ask each partition for exactly that many, so limits and
 *   offsets are exact.
 * - With `durability: 'replicated'` every mutation that succeeded is followed by `WAIT 1` on the connection
 *   of the master that took it; no replica confirmation within the timeout fails the call with `Io` saying
 *   the write may have happened.
 *
 * Arguments are validated (with the same checks, in the same order, as the single-partition store) before
 * any lookup, so a bad argument is `Validation` with nothing touched.
 */
import type { Redis } from 'ioredis';
import * as args from '../contract/args.js';
import { StorageError, isStorageError } from '../contract/errors.js';
import { dispatchIdsArg, resetAttemptsArg, type RequeueDeadLetterOptions } from '../contract/dead-letters.js';
import type { RunControl } from '../contract/cancel-requests.js';
import type { ClaimRef, CompletedWithNext, NextClaim } from '../contract/fused.js';
import type {
  MailboxInterrupt,
  MailboxInterruptDetails,
  RunDispatch,
  RunDispatchInput,
  RunDispatchResult,
  RunDispatchStatus,
} from '../contract/types.js';
import type { IndexHeads } from '../metrics/store-probe.js';
import type { RawSignal, SignalRef } from '../signals/transport.js';
import type { SignalTarget } from '../signals/filter.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { connectionForKey, isCluster, keySlot, masterConnections, type RedisClient } from './cluster.js';
import { toIoError } from './errors.js';
import { id, text, wellFormed } from './ids.js';
import { terminalKey, type RedisKeys } from './keys.js';
import type { Durability } from './options.js';
import {
  RouteCache,
  appendTo,
  compareBytes,
  directoryShardOf,
  mergeQuotas,
  partitionOf,
  type IndexEntry,
} from './partitions.js';
import { unwrapReply, type ScriptRunner } from './scripts.js';
import { RedisMailboxStore, signalFlags, type RedisMailboxStoreParts, type Stoppable } from './store.js';

export interface PartitionedStoreParts extends RedisMailboxStoreParts {
  /** The shared connection: a single-server client or a Cluster. */
  client: RedisClient;
  /** One store per partition, in partition order, on `client`. */
  partitions: readonly RedisMailboxStore[];
  partitionKeys: readonly RedisKeys[];
  durability: Durability;
}

/** Keys deleted per UNLINK during `destroyNamespace`. */
const DESTROY_SCAN_COUNT = 1000;
/** Terminal records per purge script call (as the single-partition store). */
const PURGE_BATCH = 1000;
/** Lookups tried before giving up on a directory entry that keeps changing under us. */
const DIRECTORY_ATTEMPTS = 4;

const optionalToken = (value: unknown, name = 'claim_token'): void => {
  if (value !== undefined) id(name, value);
};

/** Replace the entry when it still holds the expected partition (ARGV: id, expected, new). */
const DIRECTORY_SWAP = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0`;
/** Delete each (id, partition) pair whose entry still holds that partition. */
const DIRECTORY_DROP = `local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return n`;

/** `[member, score, member, score, …]` → index entries of `partition`. */
function entries(partition: number, flat: readonly string[]): IndexEntry[] {
  const out: IndexEntry[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    out.push({ partition, member: flat[i] as string, score: Number(flat[i + 1]) });
  }
  return out;
}

/** Contract order of terminal records: updated_at, created_at, dispatch_id (bytes). */
function compareTerminal(a: RunDispatch, b: RunDispatch): number {
  return (
    a.updated_at - b.updated_at ||
    compareBytes(terminalKey(a.created_at, a.dispatch_id), terminalKey(b.created_at, b.dispatch_id))
  );
}

export class PartitionedRedisMailboxStore extends RedisMailboxStore {
  readonly #client: RedisClient;
  readonly #parts: readonly RedisMailboxStore[];
  readonly #keysOf: readonly RedisKeys[];
  readonly #durability: Durability;
  readonly #timeoutMs: number;
  readonly #secrets: readonly string[];
  readonly #log: Logger;
  readonly #namespace: string | null;
  readonly #transportRef: RedisMailboxStoreParts['transport'];
  readonly #scripts: ScriptRunner;
  readonly #signalFlag: string;
  readonly #republishAfterMs: number;
  readonly #routes = new RouteCache();
  #sweeperRef: Stoppable | null = null;
  #isClosed = false;

  /** The key layout of each partition, in partition order (partition k's keys at index k). */
  get partitionKeys(): readonly RedisKeys[] {
    return this.#keysOf;
  }

  constructor(parts: PartitionedStoreParts) {
    super(parts);
    this.#client = parts.client;
    this.#parts = parts.partitions;
    this.#keysOf = parts.partitionKeys;
    this.#durability = parts.durability;
    this.#timeoutMs = parts.commandTimeoutMs;
    this.#secrets = parts.secrets;
    this.#log = parts.logger ?? silentLogger;
    this.#namespace = parts.keys.namespace;
    this.#transportRef = parts.transport;
    this.#scripts = parts.scripts;
    this.#signalFlag = signalFlags(parts.signals, parts.quietClaimedThreads ?? false);
    this.#republishAfterMs = parts.republishAfterMs;
  }

  /** Number of partitions of the namespace. */
  get partitionCount(): number {
    return this.#parts.length;
  }

  /** The partition of a thread (and of its dispatches). */
  partitionOfThread(threadId: string): number {
    return partitionOf(threadId, this.#parts.length);
  }

  /** The keys of the partition that holds `threadId` (tests, repair tools). */
  keysForThread(threadId: string): RedisKeys {
    return this.#keysOf[this.partitionOfThread(threadId)] as RedisKeys;
  }

  /** The keys of every partition, in partition order. */
  get partitionKeyList(): readonly RedisKeys[] {
    return this.#keysOf;
  }

  override attachSweeper(sweeper: Stoppable): void {
    this.#sweeperRef = sweeper;
    super.attachSweeper(sweeper);
  }

  /** The partitions make the calls that end claims: each of them asks `sweeper` for the hand-off sweep. */
  override handOffTo(sweeper: Stoppable): void {
    for (const part of this.#parts) part.handOffTo(sweeper);
  }

  // ---- writes ----

  override async enqueue(dispatch: RunDispatchInput): Promise<void> {
    const d = args.dispatchForEnqueue(dispatch);
    for (const field of ['dispatch_id', 'thread_id', 'run_id', 'dedupe_key', 'last_error'] as const) {
      const value = d[field];
      if (value !== null) wellFormed(field, value);
    }
    this.#open();
    const p = this.partitionOfThread(d.thread_id);
    if (this.#parts.length === 1) {
      await this.#durable([p], () => this.#part(p).enqueue(dispatch));
      return;
    }
    const shard = directoryShardOf(d.dispatch_id, this.#parts.length);
    const created = await this.#claimDirectoryEntry(d, p, shard);
    try {
      await this.#durable([p, shard], () => this.#part(p).enqueue(dispatch));
    } catch (err) {
      const duplicate = isStorageError(err, 'AlreadyExists') && err.detail === d.dispatch_id;
      if (created && !duplicate) {
        await this.#dropDirectoryEntries(p, [d.dispatch_id]).catch(() => undefined);
      }
      throw err;
    }
    this.#routes.set(d.dispatch_id, p);
  }

  override async claim(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    limit: number,
    claimToken?: string,
  ): Promise<RunDispatch[]> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    const claimed = await this.#durable([p], () =>
      this.#part(p).claim(threadId, consumerId, leaseMs, now, limit, claimToken),
    );
    for (const d of claimed) this.#routes.set(d.dispatch_id, p);
    return claimed;
  }

  override async claimAndStart(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    const started = await this.#durable([p], () =>
      this.#part(p).claimAndStart(threadId, consumerId, leaseMs, now, dispatchInstanceId, claimToken),
    );
    if (started !== null) this.#routes.set(started.dispatch_id, p);
    return started;
  }

  override async claimDispatchAndStart(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    args.claimLease(consumerId, leaseMs, now, id);
    id('dispatch_instance_id', dispatchInstanceId);
    optionalToken(claimToken);
    return this.#byId(
      did,
      (s) => s.claimDispatchAndStart(did, consumerId, leaseMs, now, dispatchInstanceId, claimToken),
      (r) => r === null,
    );
  }

  override async claimDispatch(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    args.claimLease(consumerId, leaseMs, now, id);
    optionalToken(claimToken);
    return this.#byId(
      did,
      (s) => s.claimDispatch(did, consumerId, leaseMs, now, claimToken),
      (r) => r === null,
    );
  }

  override async ack(dispatchId: string, claimToken: string, now: number): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    args.u64('now', now);
    await this.#byId(did, (s) => s.ack(did, claimToken, now));
  }

  override async recordDispatchStart(
    dispatchId: string,
    claimToken: string,
    dispatchInstanceId: string,
    now: number,
  ): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    id('dispatch_instance_id', dispatchInstanceId);
    args.u64('now', now);
    await this.#byId(did, (s) => s.recordDispatchStart(did, claimToken, dispatchInstanceId, now));
  }

  override async recordRunResult(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    const did = this.#checkResultCall(dispatchId, claimToken, result, now);
    await this.#byId(did, (s) => s.recordRunResult(did, claimToken, result, now));
  }

  override async completeAndAck(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    const did = this.#checkResultCall(dispatchId, claimToken, result, now);
    await this.#byId(did, (s) => s.completeAndAck(did, claimToken, result, now));
  }

  /**
   * One script when the next thread shares the completed dispatch's partition (the usual case: the same
   * thread); otherwise the completion, then the claim on the other partition, with the claim's failure
   * reported as `claimError` exactly like the fused script reports it.
   */
  override async completeAndClaimNext(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
    next: NextClaim,
  ): Promise<CompletedWithNext> {
    const did = this.#checkResultCall(dispatchId, claimToken, result, now);
    const claim = args.nextClaim(next, now, id);
    optionalToken(next.claimToken, 'next.claim_token');
    const nextPartition = this.partitionOfThread(claim.threadId);
    let together = false;
    const outcome = await this.#byId(did, async (s, p) => {
      if (p !== nextPartition) return null;
      together = true;
      return s.completeAndClaimNext(did, claimToken, result, now, next);
    });
    if (together && outcome !== null) {
      if (outcome.next !== null) this.#routes.set(outcome.next.dispatch_id, nextPartition);
      return outcome;
    }
    await this.#byId(did, (s) => s.completeAndAck(did, claimToken, result, now));
    try {
      const started = await this.claimAndStart(
        next.threadId,
        next.consumerId,
        next.leaseMs,
        now,
        next.dispatchInstanceId,
        next.claimToken,
      );
      return { next: started };
    } catch (err) {
      if (isStorageError(err) && err.kind !== 'Io') return { next: null, claimError: err };
      throw err;
    }
  }

  override async nack(
    dispatchId: string,
    claimToken: string,
    retryAt: number,
    error: string,
    now: number,
  ): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    args.u64('retry_at', retryAt);
    text('error', error);
    args.u64('now', now);
    await this.#byId(did, (s) => s.nack(did, claimToken, retryAt, error, now));
  }

  override async deadLetter(
    dispatchId: string,
    claimToken: string,
    error: string,
    now: number,
  ): Promise<void> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    text('error', error);
    args.u64('now', now);
    await this.#byId(did, (s) => s.deadLetter(did, claimToken, error, now));
  }

  override async cancel(dispatchId: string, now: number): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    args.u64('now', now);
    return this.#byId(
      did,
      (s) => s.cancel(did, now),
      (r) => r === null,
    );
  }

  override async releaseClaim(ref: ClaimRef, claimToken: string, now: number): Promise<RunDispatch[]> {
    if (typeof ref !== 'object' || ref === null) throw StorageError.validation('ref must be an object');
    const r = ref as { dispatchId?: unknown; threadId?: unknown };
    let did: string | null = null;
    let thread: string | null = null;
    if (r.dispatchId !== undefined && r.threadId === undefined) did = id('ref.dispatch_id', r.dispatchId);
    else if (r.threadId !== undefined && r.dispatchId === undefined) thread = id('ref.thread_id', r.threadId);
    else throw StorageError.validation('ref must name exactly one of dispatchId or threadId');
    id('claim_token', claimToken);
    args.u64('now', now);
    if (thread !== null) {
      const p = this.partitionOfThread(thread);
      return this.#durable([p], () => this.#part(p).releaseClaim({ threadId: thread }, claimToken, now));
    }
    const dispatch = did as string;
    return this.#byId(
      dispatch,
      (s) => s.releaseClaim({ dispatchId: dispatch }, claimToken, now),
      (out) => out.length === 0,
    );
  }

  override async listClaimedByRunId(runId: string, limit: number): Promise<RunDispatch[]> {
    id('run_id', runId);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    if (max === 0) return [];
    this.#open();
    const found = (await Promise.all(this.#parts.map((s) => s.listClaimedByRunId(runId, max)))).flat();
    found.sort(
      (a, b) => (a.lease_until ?? 0) - (b.lease_until ?? 0) || compareBytes(a.dispatch_id, b.dispatch_id),
    );
    return this.#remember(found.slice(0, max));
  }

  override async extendLease(
    dispatchId: string,
    claimToken: string,
    extensionMs: number,
    now: number,
  ): Promise<boolean> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    args.u64('extension_ms', extensionMs);
    args.u64('now', now);
    args.deadline(now, extensionMs, 'extension_ms');
    return this.#byId(did, (s) => s.extendLease(did, claimToken, extensionMs, now));
  }

  override async interrupt(threadId: string, now: number): Promise<MailboxInterrupt> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    return this.#durable([p], () => this.#part(p).interrupt(threadId, now));
  }

  override async interruptDetailed(threadId: string, now: number): Promise<MailboxInterruptDetails> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    return this.#durable([p], () => this.#part(p).interruptDetailed(threadId, now));
  }

  override async currentDispatchEpoch(threadId: string): Promise<number> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    this.#open();
    return this.#part(p).currentDispatchEpoch(threadId);
  }

  override async requestRunCancel(dispatchId: string, claimToken: string): Promise<boolean> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    return this.#byId(
      did,
      (s) => s.requestRunCancel(did, claimToken),
      (recorded) => !recorded,
    );
  }

  override async readRunControl(threadId: string): Promise<RunControl> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    this.#open();
    return this.#part(p).readRunControl(threadId);
  }

  override async supersedeClaimed(
    dispatchId: string,
    claimToken: string,
    now: number,
    reason: string,
  ): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    args.u64('now', now);
    text('reason', reason);
    return this.#byId(
      did,
      (s) => s.supersedeClaimed(did, claimToken, now, reason),
      (r) => r === null,
    );
  }

  // ---- dead letters ----

  override async requeueDeadLetter(
    dispatchId: string,
    now: number,
    options?: RequeueDeadLetterOptions,
  ): Promise<RunDispatch> {
    const did = id('dispatch_id', dispatchId);
    args.u64('now', now);
    resetAttemptsArg(options);
    return this.#byId(did, (s) => s.requeueDeadLetter(did, now, options));
  }

  override async purgeDeadLetters(dispatchIds: readonly string[]): Promise<number> {
    const ids = dispatchIdsArg(dispatchIds, id);
    if (ids.length === 0) return 0;
    this.#open();
    const groups = await this.#groupByPartition(ids);
    const counts = await Promise.all(
      [...groups].map(([p, group]) =>
        this.#durable([p], () => this.#part(p).purgeDeadLetters(group)).then(async (n) => {
          if (n > 0) await this.#forgetPurged(p, group);
          return n;
        }),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  // ---- metrics probe ----

  override async probeIndexHeads(): Promise<IndexHeads> {
    this.#open();
    const heads = await Promise.all(this.#parts.map((s) => s.probeIndexHeads()));
    const min = (values: (number | null)[]): number | null => {
      const present = values.filter((v): v is number => v !== null);
      return present.length === 0 ? null : Math.min(...present);
    };
    return {
      oldestLeaseUntil: min(heads.map((h) => h.oldestLeaseUntil)),
      earliestSignalDue: min(heads.map((h) => h.earliestSignalDue)),
    };
  }

  // ---- reads ----

  override async loadDispatch(dispatchId: string): Promise<RunDispatch | null> {
    const did = id('dispatch_id', dispatchId);
    return this.#byId(
      did,
      (s) => s.loadDispatch(did),
      (r) => r === null,
      false,
    );
  }

  override async loadDispatches(dispatchIds: readonly string[]): Promise<(RunDispatch | null)[]> {
    const ids = dispatchIds.map((d, i) => id(`dispatch_ids.${i}`, d));
    if (ids.length === 0) return [];
    this.#open();
    const out = new Map<string, RunDispatch | null>();
    const groups = await this.#groupByPartition(ids);
    await Promise.all(
      [...groups].map(async ([p, group]) => {
        const records = await this.#part(p).loadDispatches(group);
        group.forEach((d, i) => out.set(d, records[i] ?? null));
      }),
    );
    // A cached route that found nothing is checked once against the directory (a purged id may be back on
    // another thread).
    const misses = [...out]
      .filter(([d, r]) => r === null && this.#routes.get(d) !== undefined)
      .map(([d]) => d);
    for (const d of misses) {
      this.#routes.delete(d);
      out.set(d, await this.loadDispatch(d));
    }
    return ids.map((d) => {
      const r = out.get(d) ?? null;
      if (r !== null) this.#routes.set(d, this.partitionOfThread(r.thread_id));
      return r;
    });
  }

  override async listDispatches(
    threadId: string,
    statusFilter: readonly RunDispatchStatus[] | null,
    limit: number,
    offset: number,
  ): Promise<RunDispatch[]> {
    const p = this.partitionOfThread(id('thread_id', threadId));
    this.#open();
    return this.#remember(await this.#part(p).listDispatches(threadId, statusFilter, limit, offset));
  }

  override async countDispatchesByStatus(status: RunDispatchStatus): Promise<number> {
    const s = args.status('status', status);
    this.#open();
    const counts = await Promise.all(this.#parts.map((part) => part.countDispatchesByStatus(s)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * The heads of every partition's terminal index (`offset + limit` entries each) merged in contract order
   * give each partition's share of the window; each partition then lists exactly its share.
   */
  override async listTerminalDispatches(limit: number, offset: number): Promise<RunDispatch[]> {
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const skip = args.bounded('offset', offset, args.MAX_OFFSET);
    if (max === 0) return [];
    this.#open();
    const heads = await this.#heads((k) => ['zrange', k.terminal, '0', String(skip + max - 1), 'WITHSCORES']);
    const { skipped, taken } = mergeQuotas(heads, skip, max);
    const lists = await Promise.all(
      this.#parts.map((s, p) =>
        (taken[p] ?? 0) > 0 ? s.listTerminalDispatches(taken[p] ?? 0, skipped[p] ?? 0) : [],
      ),
    );
    return this.#remember(lists.flat().sort(compareTerminal).slice(0, max));
  }

  /** The oldest `limit` expired leases across partitions: each partition reclaims its share of them. */
  override async reclaimExpiredLeases(now: number, limit: number): Promise<RunDispatch[]> {
    args.u64('now', now);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    if (max === 0) return [];
    this.#open();
    const heads = await this.#heads((k) => [
      'zrangebyscore',
      k.leases,
      '-inf',
      `(${now}`,
      'WITHSCORES',
      'LIMIT',
      '0',
      String(max),
    ]);
    const { taken, window } = mergeQuotas(heads, 0, max);
    const rank = new Map(window.map((e, i) => [e.member, i]));
    const reclaimed = await Promise.all(
      this.#parts.map((s, p) =>
        (taken[p] ?? 0) > 0 ? this.#durable([p], () => s.reclaimExpiredLeases(now, taken[p] ?? 0)) : [],
      ),
    );
    const out = reclaimed.flat();
    out.sort((a, b) => (rank.get(a.dispatch_id) ?? max) - (rank.get(b.dispatch_id) ?? max));
    return this.#remember(out);
  }

  /**
   * Every partition purges on its own (in batches); the directory entries of the purged records are then
   * removed (their ids are read from the terminal index just before each batch, and only entries whose
   * record is really gone are dropped).
   */
  override async purgeTerminal(olderThan: number): Promise<number> {
    args.u64('older_than', olderThan);
    this.#open();
    if (this.#parts.length === 1) {
      return this.#durable([0], () => this.#part(0).purgeTerminal(olderThan));
    }
    const counts = await Promise.all(this.#parts.map((_, p) => this.#purgePartition(p, olderThan)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The single-partition store's purge loop, one batch at a time, each preceded by a read of its ids. */
  async #purgePartition(p: number, olderThan: number): Promise<number> {
    const k = this.#keysOf[p] as RedisKeys;
    let total = 0;
    for (;;) {
      const members = await this.#io(() =>
        this.#client.zrangebyscore(k.terminal, '-inf', `(${olderThan}`, 'LIMIT', '0', String(PURGE_BATCH)),
      );
      const [deleted, more] = await this.#durable([p], async () =>
        unwrapReply(
          'purge_terminal',
          await this.#io(() =>
            this.#scripts.eval(
              'purge_terminal',
              [k.prefix],
              [
                this.#signalFlag,
                String(Date.now()),
                String(this.#republishAfterMs),
                String(olderThan),
                String(PURGE_BATCH),
              ],
            ),
          ),
        ),
      );
      const n = Number(deleted);
      if (!Number.isSafeInteger(n) || n < 0) throw StorageError.serialization('purge count: not an integer');
      total += n;
      // The terminal key is `<created_at, 16 digits>|<dispatch_id>`.
      if (n > 0)
        await this.#forgetPurged(
          p,
          members.map((m) => m.slice(17)),
        );
      if (more !== '1') return total;
    }
  }

  override async queuedThreadIds(): Promise<string[]> {
    this.#open();
    const lists = await Promise.all(this.#parts.map((s) => s.queuedThreadIds()));
    return lists.flat().sort();
  }

  // ---- signals ----

  protected override assertUsable(): void {
    this.#open();
    super.assertUsable();
  }

  // A signal names its thread, so its dispatch's partition is known without a lookup.
  protected override notePulledSignals(signals: readonly RawSignal[]): void {
    for (const s of signals) {
      if (typeof s.thread_id === 'string')
        this.#routes.set(s.dispatch_id, this.partitionOfThread(s.thread_id));
    }
  }

  protected override loadSignalRecords(
    ids: readonly string[],
  ): Promise<(SignalTarget | StorageError | null)[]> {
    return Promise.all(
      ids.map((did) =>
        this.loadDispatch(did).catch((err: unknown) => {
          if (isStorageError(err, 'Serialization')) return err;
          throw err;
        }),
      ),
    );
  }

  override async sweepDueSignals(now: number, republishAfterMs: number, limit: number): Promise<SignalRef[]> {
    args.u64('now', now);
    args.u64('republish_after_ms', republishAfterMs);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    args.deadline(now, republishAfterMs, 'republish_after_ms');
    if (max === 0) return [];
    this.#open();
    const heads = await this.#heads((k) => [
      'zrangebyscore',
      k.due,
      '-inf',
      String(now),
      'WITHSCORES',
      'LIMIT',
      '0',
      String(max),
    ]);
    const { taken } = mergeQuotas(heads, 0, max);
    const swept = await Promise.all(
      this.#parts.map((s, p) =>
        (taken[p] ?? 0) > 0
          ? this.#durable([p], () => s.sweepDueSignals(now, republishAfterMs, taken[p] ?? 0))
          : [],
      ),
    );
    return swept.flat();
  }

  // ---- lifecycle ----

  /**
   * Delete every key of the namespace on every master (SCAN there, UNLINK grouped by slot), after the
   * sweeper stopped and the transport's server-side state is gone. Refuses without a namespace.
   */
  override async destroyNamespace(): Promise<void> {
    if (this.#namespace === null) {
      throw StorageError.validation(
        'destroyNamespace needs a namespace (refusing to delete the default one)',
      );
    }
    this.#open();
    await this.#sweeperRef?.stop();
    const transport = this.#transportRef as { destroy?: () => Promise<void> } | null;
    if (transport?.destroy) {
      try {
        await transport.destroy();
      } catch (err) {
        throw toIoError('signals', err, this.#secrets);
      }
    }
    const patterns = [this.keys.pattern];
    if (this.#parts.length > 1) patterns.push(`awaken:{${this.#namespace}:p*`);
    for (const node of masterConnections(this.#client)) {
      for (const pattern of patterns) await this.#unlinkMatching(node, pattern);
    }
  }

  async #unlinkMatching(node: Redis, pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, batch] = await this.#io(() =>
        node.scan(cursor, 'MATCH', pattern, 'COUNT', String(DESTROY_SCAN_COUNT)),
      );
      cursor = next;
      const bySlot = new Map<number, string[]>();
      for (const key of batch) {
        const slot = isCluster(this.#client) ? keySlot(key) : 0;
        appendTo(bySlot, slot, key);
      }
      for (const keys of bySlot.values()) await this.#io(() => this.#client.unlink(...keys));
    } while (cursor !== '0');
  }

  override async close(): Promise<void> {
    if (!this.#isClosed) {
      this.#isClosed = true;
      await Promise.all(this.#parts.map((s) => s.close()));
    }
    await super.close();
  }

  // ---- routing ----

  #part(p: number): RedisMailboxStore {
    return this.#parts[p] as RedisMailboxStore;
  }

  #open(): void {
    if (this.#isClosed) throw StorageError.io('mailbox store is closed');
  }

  /**
   * Run `call` on the partition of dispatch `did`. A cached partition whose answer says "no such record"
   * (`missing`, or `NotFound`) is checked against the directory, and the call repeated where the record
   * really is. `write` false for reads (no durability wait).
   */
  async #byId<T>(
    did: string,
    call: (store: RedisMailboxStore, partition: number) => Promise<T>,
    missing: (result: T) => boolean = () => false,
    write = true,
  ): Promise<T> {
    this.#open();
    const run = (p: number): Promise<T> =>
      write ? this.#durable([p], () => call(this.#part(p), p)) : call(this.#part(p), p);
    const cached = this.#parts.length === 1 ? 0 : this.#routes.get(did);
    if (cached !== undefined) {
      let result: T;
      try {
        result = await run(cached);
      } catch (err) {
        if (this.#parts.length === 1 || !isStorageError(err, 'NotFound')) throw err;
        const actual = await this.#locate(did);
        if (actual === null || actual === cached) throw err;
        this.#routes.set(did, actual);
        return run(actual);
      }
      if (this.#parts.length === 1 || !missing(result)) return result;
      const actual = await this.#locate(did);
      if (actual === null || actual === cached) return result;
      this.#routes.set(did, actual);
      return run(actual);
    }
    const located = await this.#locate(did);
    if (located !== null) this.#routes.set(did, located);
    // Nowhere: any partition answers "missing" the way the contract wants (NotFound, null, ...).
    return run(located ?? directoryShardOf(did, this.#parts.length));
  }

  /** The partition holding dispatch `did`: its directory entry, else a probe of every partition. */
  async #locate(did: string): Promise<number | null> {
    const n = this.#parts.length;
    const shard = directoryShardOf(did, n);
    const entry = await this.#io(() =>
      this.#client.hget((this.#keysOf[shard] as RedisKeys).dispatchDirectory, did),
    );
    const p = entry === null ? NaN : Number(entry);
    if (Number.isSafeInteger(p) && p >= 0 && p < n) return p;
    const present = await this.#io(() =>
      Promise.all(this.#keysOf.map((k) => this.#client.exists(k.record(did)))),
    );
    const found = present.findIndex((e) => e === 1);
    return found === -1 ? null : found;
  }

  /** Partition → the ids (of `ids`) it holds, unknown ids under their directory shard. */
  async #groupByPartition(ids: readonly string[]): Promise<Map<number, string[]>> {
    const groups = new Map<number, string[]>();
    const n = this.#parts.length;
    await Promise.all(
      ids.map(async (d) => {
        let p = n === 1 ? 0 : this.#routes.get(d);
        if (p === undefined) p = (await this.#locate(d)) ?? directoryShardOf(d, n);
        appendTo(groups, p, d);
      }),
    );
    return groups;
  }

  /**
   * Make `p` the directory owner of `did` (HSETNX). Another owner whose record still exists means the id is
   * taken: `AlreadyExists(did)`. An owner without its record (purged, or a failed enqueue) is replaced if it
   * did not change meanwhile. True when this call wrote the entry.
   */
  async #claimDirectoryEntry(d: RunDispatch, p: number, shard: number): Promise<boolean> {
    const did = d.dispatch_id;
    const key = (this.#keysOf[shard] as RedisKeys).dispatchDirectory;
    for (let attempt = 0; attempt < DIRECTORY_ATTEMPTS; attempt++) {
      if ((await this.#io(() => this.#client.hsetnx(key, did, String(p)))) === 1) return true;
      const owner = await this.#io(() => this.#client.hget(key, did));
      if (owner === null) continue;
      if (owner === String(p)) return false;
      const q = Number(owner);
      const valid = Number.isSafeInteger(q) && q >= 0 && q < this.#parts.length;
      if (valid) {
        const exists = await this.#io(() => this.#client.exists((this.#keysOf[q] as RedisKeys).record(did)));
        if (exists === 1) {
          // The enqueue script checks the dedupe key before the id: so does this refusal.
          await this.#refuseDedupeConflict(d, p);
          throw StorageError.alreadyExists(did);
        }
      }
      const swapped = await this.#io(() => this.#client.eval(DIRECTORY_SWAP, 1, key, did, owner, String(p)));
      if (swapped === 1) return true;
    }
    throw StorageError.io(`dispatch directory entry of '${did}' keeps changing; try again`);
  }

  /**
   * `AlreadyExists("dedupe_key=<key>")` when a non-terminal dispatch of `d`'s thread holds its dedupe key,
   * as the enqueue script would answer before looking at the id.
   */
  async #refuseDedupeConflict(d: RunDispatch, p: number): Promise<void> {
    if (d.dedupe_key === null) return;
    const k = this.#keysOf[p] as RedisKeys;
    const holder = await this.#io(() => this.#client.hget(k.dedupe(d.thread_id), d.dedupe_key as string));
    if (holder === null) return;
    const status = await this.#io(() => this.#client.hget(k.record(holder), 'status'));
    if (status === 'Queued' || status === 'Claimed') {
      throw StorageError.alreadyExists(`dedupe_key=${d.dedupe_key}`);
    }
  }

  /** Remove the directory entries of `ids` that point at `p` and whose record in `p` is gone. */
  async #dropDirectoryEntries(p: number, ids: readonly string[]): Promise<void> {
    const k = this.#keysOf[p] as RedisKeys;
    const present = await this.#io(() => Promise.all(ids.map((d) => this.#client.exists(k.record(d)))));
    const gone = ids.filter((_, i) => present[i] === 0);
    const byShard = new Map<number, string[]>();
    for (const d of gone) {
      this.#routes.delete(d);
      const shard = directoryShardOf(d, this.#parts.length);
      appendTo(byShard, shard, d, String(p));
    }
    await Promise.all(
      [...byShard].map(([shard, pairs]) =>
        this.#io(() =>
          this.#client.eval(
            DIRECTORY_DROP,
            1,
            (this.#keysOf[shard] as RedisKeys).dispatchDirectory,
            ...pairs,
          ),
        ),
      ),
    );
  }

  /** Directory cleanup after a purge: best effort (a leftover entry only costs memory, see partitions.ts). */
  async #forgetPurged(p: number, ids: readonly string[]): Promise<void> {
    if (this.#parts.length === 1 || ids.length === 0) return;
    try {
      await this.#dropDirectoryEntries(p, ids);
    } catch (err) {
      this.#log.warn?.('could not remove the directory entries of purged dispatches', {
        error: toIoError('redis', err, this.#secrets).message,
      });
    }
  }

  /** One read per partition of an ordered index (`[member, score, ...]`), in parallel. */
  async #heads(command: (k: RedisKeys) => [string, ...string[]]): Promise<IndexEntry[][]> {
    return this.#io(() =>
      Promise.all(
        this.#keysOf.map(async (k, p) => {
          const [name, ...rest] = command(k);
          const reply = (await this.#client.call(name, ...rest)) as string[];
          return entries(p, reply);
        }),
      ),
    );
  }

  #remember(records: RunDispatch[]): RunDispatch[] {
    for (const d of records) this.#routes.set(d.dispatch_id, this.partitionOfThread(d.thread_id));
    return records;
  }

  /** The checks of `recordRunResult` and the completions, in the single-partition store's order. */
  #checkResultCall(dispatchId: string, claimToken: string, result: RunDispatchResult, now: number): string {
    const did = id('dispatch_id', dispatchId);
    id('claim_token', claimToken);
    const r = args.runResult(result);
    args.u64('now', now);
    wellFormed('result.run_id', r.run_id);
    wellFormed('result.dispatch_instance_id', r.dispatch_instance_id);
    if (r.response != null) wellFormed('result.response', r.response);
    if (r.error != null) wellFormed('result.error', r.error);
    return did;
  }

  // ---- plumbing ----

  /** A command of this store's own (directory, index heads, destroy) within the command timeout, as `Io`. */
  async #io<T>(operation: () => Promise<T>): Promise<T> {
    this.#open();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(StorageError.io(`redis: no reply within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([operation(), expired]);
    } catch (err) {
      throw toIoError(isCluster(this.#client) ? 'redis cluster' : 'redis', err, this.#secrets);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Run a mutation; with `durability: 'replicated'` confirm it afterwards with `WAIT 1` on the master
   * connection of each partition it touched.
   */
  async #durable<T>(partitions: readonly number[], mutation: () => Promise<T>): Promise<T> {
    const result = await mutation();
    if (this.#durability === 'replicated') await this.#confirm(partitions);
    return result;
  }

  async #confirm(partitions: readonly number[]): Promise<void> {
    const nodes = new Set<Redis>();
    for (const p of new Set(partitions)) {
      const node = connectionForKey(this.#client, (this.#keysOf[p] as RedisKeys).prefix);
      if (node === null) {
        throw StorageError.io(
          'redis cluster: the master of the written slot is unknown, so no replica can confirm the write; it may have happened',
        );
      }
      nodes.add(node);
    }
    const waitMs = Math.max(1, Math.floor(this.#timeoutMs * 0.8));
    await Promise.all(
      [...nodes].map(async (node) => {
        let acked: number;
        try {
          acked = await this.#io(() => node.wait(1, waitMs));
        } catch (err) {
          throw StorageError.io(
            `redis: could not confirm the write with a replica (${toIoError('redis', err, this.#secrets).detail}); it may have happened`,
          );
        }
        if (acked < 1) {
          throw StorageError.io(
            `redis: no replica confirmed the write within ${waitMs} ms (durability 'replicated'); it may have happened`,
          );
        }
      }),
    );
  }
}

/**
 * `MemoryMailboxStore`: the in-process store with the reference semantics (upstream's in-memory store, plus
 * this package's decisions: duplicate ids are `AlreadyExists`, blank ids `Validation`, ties break on
 * dispatch_id), in-process dispatch signals and an in-process live channel.
 *
 * Atomicity: every method validates its arguments first (`args.*`) and then reads and writes the state
 * synchronously, with no `await` in between, so each call is one indivisible step even under many
 * concurrent calls (exactly one winner for competing claims). Transitions compute the next record, run
 * `validateForPersist` on it and only then commit, so a failed transition changes nothing.
 *
 * Records handed out are copies; stored records are never shared with callers.
 */
import { uuidV7 as uuidv7 } from '../util/uuid.js';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
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
import { normalizeRunDispatch } from '../contract/codec.js';
import { validateForPersist } from '../contract/validate.js';
import { filterSignals, MAX_PARKED_SIGNAL_MS } from '../signals/filter.js';
import type { SignalRef } from '../signals/transport.js';
import { MemoryLiveChannel } from './live.js';
import {
  type MemoryMailboxStoreOptions,
  type ResolvedMemoryOptions,
  resolveMemoryOptions,
} from './options.js';
import { compareQueueOrder, copyRecord } from './records.js';
import { RepublishSchedule } from './republish.js';
import { MemorySignalQueue } from './signals.js';
import type { SortedList } from './sorted-list.js';
import { DispatchTable, type ThreadState } from './table.js';
import * as tx from '../contract/transitions.js';
import { REASON } from '../contract/transitions.js';
import {
  DEAD_LETTER_STORE,
  deadLetterRequeued,
  dispatchIdsArg,
  resetAttemptsArg,
  type DeadLetterMailboxStore,
  type RequeueDeadLetterOptions,
} from '../contract/dead-letters.js';
import { autoInstrumentStore } from '../metrics/store-metrics.js';
import type { IndexHeads, IndexHeadsProbe } from '../metrics/store-probe.js';

export interface MemoryStoreStats {
  records: number;
  threads: number;
  queuedThreads: number;
  leases: number;
  terminal: number;
  republishScheduled: number;
  signalsPending: number;
  signalsInFlight: number;
  liveSubscribers: number;
}

/** The validated arguments of `recordRunResult` and of the fused completions built on it. */
function resultArgs(
  dispatchId: string,
  claimToken: string,
  result: RunDispatchResult,
  now: number,
): { id: string; token: string; r: RunDispatchResult } {
  const id = args.id('dispatch_id', dispatchId);
  const token = args.id('claim_token', claimToken);
  const r = args.runResult(result);
  args.u64('now', now);
  return { id, token, r };
}

/** A caller-minted claim token (`HandBackMailboxStore`), or a fresh one. */
function claimTokenArg(claimToken: unknown, name = 'claim_token'): string {
  return claimToken === undefined ? uuidv7() : args.id(name, claimToken);
}

export class MemoryMailboxStore
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
  readonly #options: ResolvedMemoryOptions;
  readonly #table = new DispatchTable();
  readonly #signals: MemorySignalQueue | null;
  readonly #republish = new RepublishSchedule();
  /**
   * `quietClaimedThreads`: threads whose claim ended in the current call, and the dispatches the call made
   * Queued and signalled (see `#handOff`, which runs once the call is over).
   */
  readonly #released = new Set<string>();
  readonly #signalledInCall = new Set<string>();
  #handOffPending = false;
  readonly #live: MemoryLiveChannel;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(options?: MemoryMailboxStoreOptions) {
    this.#options = resolveMemoryOptions(options);
    const o = this.#options;
    this.#live = new MemoryLiveChannel({ ackTimeoutMs: o.liveAckTimeoutMs, bufferSize: o.liveBufferSize });
    this.#signals = o.signals ? new MemorySignalQueue({ ackWaitMs: o.signalAckWaitMs }) : null;
    if (this.#signals !== null) {
      this.#sweeper = setInterval(() => this.sweepDueSignals(Date.now()), o.sweepIntervalMs);
      this.#sweeper.unref();
    }
    // Metrics (src/metrics): only when an OpenTelemetry SDK is installed; otherwise nothing changes.
    autoInstrumentStore(this, 'memory', null);
  }

  // ---- writes ----

  async enqueue(dispatch: RunDispatchInput): Promise<void> {
    const d = args.dispatchForEnqueue(dispatch);
    this.#assertOpen();
    const thread = this.#table.thread(d.thread_id);
    if (d.dedupe_key !== null && thread !== undefined) {
      const holderId = thread.dedupe.get(d.dedupe_key);
      const holder = holderId === undefined ? undefined : this.#table.get(holderId);
      if (holder !== undefined && !isTerminal(holder.status)) {
        throw StorageError.alreadyExists(`dedupe_key=${d.dedupe_key}`);
      }
    }
    if (this.#table.get(d.dispatch_id) !== undefined) throw StorageError.alreadyExists(d.dispatch_id);
    const next: RunDispatch = {
      ...copyRecord(d),
      status: 'Queued',
      dispatch_epoch: thread?.epoch ?? 0,
      claim_token: null,
      claimed_by: null,
      lease_until: null,
      dispatch_instance_id: null,
      run_status: null,
      termination: null,
      run_response: null,
      run_error: null,
      completed_at: null,
    };
    validateForPersist(next);
    this.#table.insert(next);
    // With `quietClaimedThreads`, a thread holding a claim gets no signal: its holder's chained completion
    // takes the next dispatch, or the claim's end hands the thread off (`#handOff`); the republish schedule
    // still covers it.
    this.#enteredQueued(
      next,
      this.#options.quietClaimedThreads && (this.#table.thread(next.thread_id)?.size('Claimed') ?? 0) > 0,
    );
  }

  async claim(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    limit: number,
    claimToken?: string,
  ): Promise<RunDispatch[]> {
    const threadKey = args.id('thread_id', threadId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const token = claimTokenArg(claimToken);
    this.#assertOpen();
    return this.#claimNow(threadKey, consumer, leaseUntil, now, max, token).map(copyRecord);
  }

  /** Fused `claim(.., 1)` + `recordDispatchStart` (src/contract/fused.ts), with no await in between. */
  async claimAndStart(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const threadKey = args.id('thread_id', threadId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now);
    const instance = args.id('dispatch_instance_id', dispatchInstanceId);
    const token = claimTokenArg(claimToken);
    this.#assertOpen();
    return this.#claimAndStartNow(threadKey, consumer, leaseUntil, now, instance, token);
  }

  /** The synchronous body of `claimAndStart` (arguments already validated); a copy of the started record. */
  #claimAndStartNow(
    threadKey: string,
    consumer: string,
    leaseUntil: number,
    now: number,
    instance: string,
    token: string,
  ): RunDispatch | null {
    const [claimed] = this.#claimNow(threadKey, consumer, leaseUntil, now, 1, token, instance);
    if (claimed === undefined) return null;
    // Claimed and started in one write unless its epoch is stale: then the start's owner check supersedes it.
    return copyRecord(claimed.run_status === 'running' ? claimed : this.#startNow(claimed, instance, now));
  }

  /** Fused `claimDispatch` + `recordDispatchStart` (src/contract/fused.ts), with no await in between. */
  async claimDispatchAndStart(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    dispatchInstanceId: string,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const id = args.id('dispatch_id', dispatchId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now);
    const instance = args.id('dispatch_instance_id', dispatchInstanceId);
    const token = claimTokenArg(claimToken);
    this.#assertOpen();
    const claimed = this.#claimByIdNow(id, consumer, leaseUntil, now, token);
    return claimed === null ? null : copyRecord(this.#startNow(claimed, instance, now));
  }

  /** The synchronous body of `claim` (arguments already validated). */
  #claimNow(
    threadKey: string,
    consumer: string,
    leaseUntil: number,
    now: number,
    max: number,
    token: string,
    startInstance?: string,
  ): RunDispatch[] {
    const thread = this.#table.thread(threadKey);
    if (thread === undefined) return [];
    this.#supersedeStaleQueued(thread, now);
    // Thread exclusivity: any Claimed dispatch (even lease-expired or stale) blocks the thread.
    if (max === 0 || thread.size('Claimed') > 0) return [];
    this.#table.promote(thread, now);
    const chosen: RunDispatch[] = [];
    const early: RunDispatch[] = [];
    for (const d of thread.ready.values()) {
      if (chosen.length >= max) break;
      // Promoted by a claim with a later `now` than this one: not available yet for this call.
      if (d.available_at > now) early.push(d);
      else chosen.push(d);
    }
    for (const d of early) this.#table.demote(thread, d);
    const epoch = thread.epoch;
    // With `startInstance`, a claim that `recordDispatchStart` would accept as is (this token, the thread's
    // epoch) is written started at once: one commit instead of two.
    return this.#commitAll(chosen, (d) =>
      startInstance !== undefined && d.dispatch_epoch >= epoch
        ? tx.claimedAndStarted(d, token, consumer, leaseUntil, startInstance, now)
        : tx.claimed(d, token, consumer, leaseUntil, now),
    );
  }

  /** The synchronous body of `claimDispatch` (arguments already validated). */
  #claimByIdNow(
    id: string,
    consumer: string,
    leaseUntil: number,
    now: number,
    token: string,
  ): RunDispatch | null {
    const d = this.#table.get(id);
    if (d === undefined || d.status !== 'Queued') return null;
    const thread = this.#table.ensureThread(d.thread_id);
    if (d.dispatch_epoch < thread.epoch) {
      this.#commit(d, tx.superseded(d, now, thread.epoch, REASON.queuedByEpoch));
      return null;
    }
    if (thread.size('Claimed') > 0) return null;
    // available_at is ignored: this is the inline claim by id (a foreground submit runs its dispatch now).
    return this.#commit(d, tx.claimed(d, token, consumer, leaseUntil, now));
  }

  /** The synchronous body of `recordDispatchStart` for the stored record `claimed`. */
  #startNow(claimed: RunDispatch, instance: string, now: number): RunDispatch {
    const d = this.#owned(claimed.dispatch_id, claimed.claim_token ?? '', now, REASON.beforeStart);
    return this.#commit(d, tx.dispatchStarted(d, instance, now));
  }

  async claimDispatch(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    claimToken?: string,
  ): Promise<RunDispatch | null> {
    const id = args.id('dispatch_id', dispatchId);
    const { consumer, leaseUntil } = args.claimLease(consumerId, leaseMs, now);
    const token = claimTokenArg(claimToken);
    this.#assertOpen();
    const claimed = this.#claimByIdNow(id, consumer, leaseUntil, now, token);
    return claimed === null ? null : copyRecord(claimed);
  }

  async ack(dispatchId: string, claimToken: string, now: number): Promise<void> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    args.u64('now', now);
    this.#assertOpen();
    this.#ackNow(id, token, now);
  }

  async recordDispatchStart(
    dispatchId: string,
    claimToken: string,
    dispatchInstanceId: string,
    now: number,
  ): Promise<void> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    const instance = args.id('dispatch_instance_id', dispatchInstanceId);
    args.u64('now', now);
    this.#assertOpen();
    const d = this.#owned(id, token, now, REASON.beforeStart);
    this.#commit(d, tx.dispatchStarted(d, instance, now));
  }

  async recordRunResult(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    const { id, token, r } = resultArgs(dispatchId, claimToken, result, now);
    this.#assertOpen();
    this.#recordResultNow(id, token, r, now);
  }

  /** Fused `recordRunResult` + `ack` (src/contract/fused.ts), with no await in between. */
  async completeAndAck(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void> {
    const { id, token, r } = resultArgs(dispatchId, claimToken, result, now);
    this.#assertOpen();
    this.#completeNow(id, token, r, now);
  }

  /** Fused `completeAndAck` + `claimAndStart` (src/contract/fused.ts), with no await in between. */
  async completeAndClaimNext(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
    next: NextClaim,
  ): Promise<CompletedWithNext> {
    const { id, token, r } = resultArgs(dispatchId, claimToken, result, now);
    const claim = args.nextClaim(next, now);
    const nextToken = claimTokenArg(next.claimToken, 'next.claim_token');
    this.#assertOpen();
    this.#completeNow(id, token, r, now);
    try {
      return {
        next: this.#claimAndStartNow(
          claim.threadId,
          claim.consumer,
          claim.leaseUntil,
          now,
          claim.instance,
          nextToken,
        ),
      };
    } catch (err) {
      if (err instanceof StorageError) return { next: null, claimError: err };
      throw err;
    }
  }

  /** The synchronous body of `completeAndAck`: the result, then the ack. */
  #completeNow(id: string, token: string, r: RunDispatchResult, now: number): void {
    // One commit: once the result's owner checks pass, the ack's (same token, same epoch) pass too.
    const d = this.#resultOwner(id, token, r, now);
    this.#commit(d, tx.resultAcked(d, r, now));
  }

  #recordResultNow(id: string, token: string, r: RunDispatchResult, now: number): void {
    const d = this.#resultOwner(id, token, r, now);
    this.#commit(d, tx.runResultRecorded(d, r, now));
  }

  /** The claimed record a run result may be recorded on (owner checks, then the result's run id). */
  #resultOwner(id: string, token: string, r: RunDispatchResult, now: number): RunDispatch {
    const d = this.#owned(id, token, now, REASON.beforeResult);
    if (r.run_id !== d.run_id) {
      throw StorageError.validation(
        `dispatch '${id}' result run_id '${r.run_id}' does not match '${d.run_id}'`,
      );
    }
    return d;
  }

  #ackNow(id: string, token: string, now: number): void {
    const d = this.#owned(id, token, now, REASON.claimedByEpoch);
    this.#commit(d, tx.acked(d, now));
  }

  async nack(
    dispatchId: string,
    claimToken: string,
    retryAt: number,
    error: string,
    now: number,
  ): Promise<void> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    args.u64('retry_at', retryAt);
    const message = args.text('error', error);
    args.u64('now', now);
    this.#assertOpen();
    const d = this.#owned(id, token, now, REASON.beforeNack);
    this.#commit(d, tx.nacked(d, retryAt, message, now));
  }

  async deadLetter(dispatchId: string, claimToken: string, error: string, now: number): Promise<void> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    const message = args.text('error', error);
    args.u64('now', now);
    this.#assertOpen();
    const d = this.#owned(id, token, now, REASON.beforeDeadLetter);
    this.#commit(d, tx.deadLettered(d, message, now));
  }

  async cancel(dispatchId: string, now: number): Promise<RunDispatch | null> {
    const id = args.id('dispatch_id', dispatchId);
    args.u64('now', now);
    this.#assertOpen();
    const d = this.#table.get(id);
    // Only Queued dispatches; no epoch check (a stale Queued dispatch becomes Cancelled). Never raises.
    if (d === undefined || d.status !== 'Queued') return null;
    return copyRecord(this.#commit(d, tx.cancelled(d, now)));
  }

  /** Hand a claim back without costing an attempt (`HandBackMailboxStore`, src/contract/fused.ts). */
  async releaseClaim(ref: ClaimRef, claimToken: string, now: number): Promise<RunDispatch[]> {
    const target = claimRefArg(ref);
    const token = args.id('claim_token', claimToken);
    args.u64('now', now);
    this.#assertOpen();
    let held: RunDispatch[];
    if ('dispatchId' in target) {
      const d = this.#table.get(target.dispatchId);
      held = d !== undefined && d.status === 'Claimed' && d.claim_token === token ? [d] : [];
    } else {
      const claimed = this.#table.thread(target.threadId)?.list('Claimed');
      held = claimed === undefined ? [] : [...claimed.values()].filter((d) => d.claim_token === token);
    }
    const next = held.map((d) => {
      const current = this.#epochOf(d.thread_id);
      return d.dispatch_epoch < current
        ? tx.superseded(d, now, current, REASON.claimedByEpoch)
        : tx.requeuedAt(d, now);
    });
    return this.#commitAll(held, (_d, i) => next[i] as RunDispatch).map(copyRecord);
  }

  /** The Claimed dispatches of `runId` (`HandBackMailboxStore`), from the lease index. */
  async listClaimedByRunId(runId: string, limit: number): Promise<RunDispatch[]> {
    const run = args.id('run_id', runId);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    this.#assertOpen();
    const out: RunDispatch[] = [];
    for (const d of this.#table.leases.values()) {
      if (out.length >= max) break;
      if (d.run_id === run) out.push(copyRecord(d));
    }
    return out;
  }

  async extendLease(
    dispatchId: string,
    claimToken: string,
    extensionMs: number,
    now: number,
  ): Promise<boolean> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    args.u64('extension_ms', extensionMs);
    args.u64('now', now);
    const leaseUntil = args.deadline(now, extensionMs, 'extension_ms');
    this.#assertOpen();
    const d = this.#table.get(id);
    if (d === undefined || d.status !== 'Claimed' || d.claim_token !== token) return false;
    const current = this.#epochOf(d.thread_id);
    if (d.dispatch_epoch < current) {
      this.#commit(d, tx.superseded(d, now, current, REASON.duringRenewal));
      return false;
    }
    this.#commit(d, tx.leaseExtended(d, leaseUntil, now));
    return true;
  }

  async interrupt(threadId: string, now: number): Promise<MailboxInterrupt> {
    const { new_dispatch_epoch, active_dispatch, superseded_count } = await this.interruptDetailed(
      threadId,
      now,
    );
    return { new_dispatch_epoch, active_dispatch, superseded_count };
  }

  async interruptDetailed(threadId: string, now: number): Promise<MailboxInterruptDetails> {
    const threadKey = args.id('thread_id', threadId);
    args.u64('now', now);
    this.#assertOpen();
    const thread = this.#table.ensureThread(threadKey);
    const old = thread.epoch;
    const queued = [...(thread.list('Queued')?.values() ?? [])].filter((d) => d.dispatch_epoch <= old);
    const next = queued.map((d) => tx.superseded(d, now, null, REASON.queuedByInterrupt));
    next.forEach((d) => validateForPersist(d));
    // The active claim is not modified: it is now stale and superseded by the next call that touches it
    // (ack, nack, renewal, start, result, lease expiry); until then it still holds the thread.
    const active = thread.list('Claimed')?.first() ?? null;
    thread.epoch = old + 1;
    this.#table.markMaybeDrained(threadKey);
    queued.forEach((d, i) => this.#commit(d, next[i] as RunDispatch));
    return {
      new_dispatch_epoch: thread.epoch,
      active_dispatch: active === null ? null : copyRecord(active),
      superseded_count: next.length,
      superseded_dispatches: next.map(copyRecord),
    };
  }

  async currentDispatchEpoch(threadId: string): Promise<number> {
    const threadKey = args.id('thread_id', threadId);
    this.#assertOpen();
    return this.#epochOf(threadKey);
  }

  /** Ask the run holding this claim to stop (`CancelRequestMailboxStore`, src/contract/cancel-requests.ts). */
  async requestRunCancel(dispatchId: string, claimToken: string): Promise<boolean> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    this.#assertOpen();
    const d = this.#table.get(id);
    if (d === undefined || d.status !== 'Claimed' || d.claim_token !== token) return false;
    const thread = this.#table.thread(d.thread_id);
    if (thread === undefined) return false;
    thread.cancelToken = token;
    return true;
  }

  /** The thread's epoch and latest cancel request (`CancelRequestMailboxStore`). */
  async readRunControl(threadId: string): Promise<RunControl> {
    const threadKey = args.id('thread_id', threadId);
    this.#assertOpen();
    const thread = this.#table.thread(threadKey);
    return { epoch: thread?.epoch ?? 0, cancelToken: thread?.cancelToken ?? null };
  }

  async supersedeClaimed(
    dispatchId: string,
    claimToken: string,
    now: number,
    reason: string,
  ): Promise<RunDispatch | null> {
    const id = args.id('dispatch_id', dispatchId);
    const token = args.id('claim_token', claimToken);
    args.u64('now', now);
    const why = args.text('reason', reason);
    this.#assertOpen();
    const d = this.#table.get(id);
    if (d === undefined || d.status !== 'Claimed') return null;
    if (d.claim_token !== token) throw StorageError.versionConflict(0, 1);
    const epoch = Math.max(d.dispatch_epoch, this.#epochOf(d.thread_id));
    return copyRecord(this.#commit(d, tx.superseded(d, now, epoch, why)));
  }

  // ---- reads ----

  async loadDispatch(dispatchId: string): Promise<RunDispatch | null> {
    const id = args.id('dispatch_id', dispatchId);
    this.#assertOpen();
    const d = this.#table.get(id);
    return d === undefined ? null : copyRecord(d);
  }

  async listDispatches(
    threadId: string,
    statusFilter: readonly RunDispatchStatus[] | null,
    limit: number,
    offset: number,
  ): Promise<RunDispatch[]> {
    const threadKey = args.id('thread_id', threadId);
    const filter = args.statusFilter(statusFilter);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const skip = args.bounded('offset', offset, args.MAX_OFFSET);
    this.#assertOpen();
    const thread = this.#table.thread(threadKey);
    if (thread === undefined || max === 0) return [];
    const statuses = filter === null ? RUN_DISPATCH_STATUSES : [...new Set(filter)];
    const lists = statuses
      .map((s) => thread.list(s))
      .filter((l): l is SortedList<RunDispatch> => l !== undefined && l.size > 0);
    return mergeOrdered(lists, skip, max).map(copyRecord);
  }

  async countDispatchesByStatus(status: RunDispatchStatus): Promise<number> {
    const s = args.status('status', status);
    this.#assertOpen();
    return this.#table.count(s);
  }

  async listTerminalDispatches(limit: number, offset: number): Promise<RunDispatch[]> {
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    const skip = args.bounded('offset', offset, args.MAX_OFFSET);
    this.#assertOpen();
    return this.#table.terminal.slice(skip, max).map(copyRecord);
  }

  async reclaimExpiredLeases(now: number, limit: number): Promise<RunDispatch[]> {
    args.u64('now', now);
    const max = args.bounded('limit', limit, args.MAX_BATCH);
    this.#assertOpen();
    if (max === 0) return [];
    // Oldest lease first; stale claims count against the limit (they are superseded, not returned).
    const expired = this.#table.leases.takeWhile((d) => (d.lease_until ?? 0) < now, max);
    const next = expired.map((d) => {
      const current = this.#epochOf(d.thread_id);
      return d.dispatch_epoch < current
        ? tx.superseded(d, now, current, REASON.leaseAfterInterrupt)
        : tx.leaseExpired(d, now);
    });
    next.forEach((d) => validateForPersist(d));
    const reclaimed: RunDispatch[] = [];
    expired.forEach((d, i) => {
      const n = this.#commit(d, next[i] as RunDispatch);
      if (n.status !== 'Superseded') reclaimed.push(copyRecord(n));
    });
    return reclaimed;
  }

  async purgeTerminal(olderThan: number): Promise<number> {
    args.u64('older_than', olderThan);
    this.#assertOpen();
    const doomed = this.#table.terminal.takeWhile((d) => d.updated_at < olderThan);
    for (const d of doomed) this.#table.remove(d);
    this.#signals?.discard(doomed.map((d) => d.dispatch_id));
    // Epoch GC: threads left without any record forget their epoch (memory semantics).
    this.#table.dropDrainedThreads();
    return doomed.length;
  }

  async queuedThreadIds(): Promise<string[]> {
    this.#assertOpen();
    return this.#table.queuedThreadIds();
  }

  // ---- signals ----

  /** Capability query; keeps answering after `close()` (it reads configuration, not state). */
  supportsDispatchSignals(): boolean {
    return this.#signals !== null;
  }

  async pullDispatchSignals(max: number, expiresMs: number): Promise<DispatchSignalEntry[]> {
    const count = args.bounded('max', max, args.MAX_BATCH);
    const expires = args.bounded('expires_ms', expiresMs, args.MAX_PULL_EXPIRES_MS);
    this.#assertOpen();
    const signals = this.#signals;
    if (signals === null || count === 0) return [];
    const raw = await signals.pull(count, expires);
    if (this.#closed) return [];
    return filterSignals(raw, (ids) => Promise.resolve(ids.map((id) => this.#peek(id))), Date.now());
  }

  /**
   * The sweeper's step (also callable directly): republish up to `limit` Queued dispatches whose
   * available_at passed and whose last signal is older than `republishAfterMs`. Returns what it signalled.
   */
  sweepDueSignals(now: number, limit = this.#options.sweepBatchSize): SignalRef[] {
    args.u64('now', now);
    const max = args.bounded('limit', limit, args.MAX_BATCH * 100);
    if (this.#signals === null || this.#closed || max === 0) return [];
    const refs = this.#republish.takeDue(now, max, now + this.#options.republishAfterMs);
    if (refs.length > 0) this.#signals.publishNow(refs);
    return refs;
  }

  // ---- live ----

  async deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    this.#assertOpenAfter(() => {
      args.id('thread_id', threadId);
      args.liveCommand(command);
    });
    return this.#live.deliverLive(threadId, command);
  }

  async deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    this.#assertOpenAfter(() => {
      args.liveTarget(target);
      args.liveCommand(command);
    });
    return this.#live.deliverLiveTo(target, command);
  }

  async openLiveChannel(threadId: string): Promise<LiveRunCommandStream> {
    this.#assertOpenAfter(() => args.id('thread_id', threadId));
    return this.#live.openLiveChannel(threadId);
  }

  async openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    this.#assertOpenAfter(() => args.liveTarget(target));
    return this.#live.openLiveChannelFor(target);
  }

  // ---- dead letters (src/contract/dead-letters.ts) ----

  async requeueDeadLetter(
    dispatchId: string,
    now: number,
    options?: RequeueDeadLetterOptions,
  ): Promise<RunDispatch> {
    const id = args.id('dispatch_id', dispatchId);
    args.u64('now', now);
    const reset = resetAttemptsArg(options);
    this.#assertOpen();
    const d = this.#table.get(id);
    if (d === undefined) throw StorageError.notFound(id);
    if (d.status !== 'DeadLetter') {
      throw StorageError.validation(`dispatch '${id}' is ${d.status}, not DeadLetter`);
    }
    const holderId =
      d.dedupe_key === null ? undefined : this.#table.thread(d.thread_id)?.dedupe.get(d.dedupe_key);
    const holder = holderId === undefined || holderId === id ? undefined : this.#table.get(holderId);
    if (holder !== undefined && !isTerminal(holder.status)) {
      throw StorageError.alreadyExists(`dedupe_key=${d.dedupe_key ?? ''}`);
    }
    return copyRecord(this.#commit(d, deadLetterRequeued(d, this.#epochOf(d.thread_id), now, reset)));
  }

  async purgeDeadLetters(dispatchIds: readonly string[]): Promise<number> {
    const ids = dispatchIdsArg(dispatchIds, args.id);
    this.#assertOpen();
    const doomed = ids
      .map((id) => this.#table.get(id))
      .filter((d): d is RunDispatch => d !== undefined && d.status === 'DeadLetter');
    for (const d of doomed) this.#table.remove(d);
    this.#table.dropDrainedThreads();
    return doomed.length;
  }

  // ---- metrics probe (src/metrics/store-probe.ts) ----

  /** The heads of the lease index and the republish schedule (metrics gauges; see src/metrics/store-probe.ts). */
  async probeIndexHeads(): Promise<IndexHeads> {
    this.#assertOpen();
    return {
      oldestLeaseUntil: this.#table.leases.first()?.lease_until ?? null,
      earliestSignalDue: this.#republish.earliest(),
    };
  }

  // ---- test hook ----

  /**
   * Test hook: store `record` verbatim (validated with `validateForPersist`, no epoch stamping, no
   * normalization), e.g. to plant a stale-epoch Queued dispatch that the public API cannot produce
   * (the next claim of its thread supersedes it). A thread without state gets it at epoch 0. Existing id →
   * `AlreadyExists(<id>)`.
   */
  async plantRecord(record: RunDispatch): Promise<void> {
    let d: RunDispatch;
    try {
      d = normalizeRunDispatch(record, 'record');
    } catch (err) {
      throw StorageError.validation(err instanceof StorageError ? err.detail : String(err));
    }
    validateForPersist(d);
    this.#assertOpen();
    if (this.#table.get(d.dispatch_id) !== undefined) throw StorageError.alreadyExists(d.dispatch_id);
    this.#table.insert(d);
    if (d.status === 'Queued') this.#enteredQueued(d);
  }

  /**
   * Sizes of the state and every index, for diagnostics and leak tests: records and threads held, threads
   * with Queued work, claims in the lease index, terminal records, dispatches scheduled for a republish,
   * undelivered and in-flight signals, open live subscriptions.
   */
  stats(): MemoryStoreStats {
    return {
      ...this.#table.stats(),
      republishScheduled: this.#republish.size,
      signalsPending: this.#signals?.pendingCount ?? 0,
      signalsInFlight: this.#signals?.inflightCount ?? 0,
      liveSubscribers: this.#live.subscriberCount,
    };
  }

  // ---- lifecycle ----

  /** Stop the sweeper, end every live stream and pending pull; later calls throw `Io`. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#republish.clear();
    await Promise.all([this.#signals?.close(), this.#live.close()]);
  }

  // ---- internals ----

  #assertOpen(): void {
    if (this.#closed) throw StorageError.io('store is closed');
  }

  /** Validate first (so bad input is `Validation` even when closed), then check the store is open. */
  #assertOpenAfter(validate: () => unknown): void {
    validate();
    this.#assertOpen();
  }

  #epochOf(threadId: string): number {
    return this.#table.thread(threadId)?.epoch ?? 0;
  }

  #peek(dispatchId: string): RunDispatch | null {
    const d = this.#table.get(dispatchId);
    return d === undefined ? null : copyRecord(d);
  }

  /**
   * The owner-side guard of ack / nack / dead_letter / record_*: missing → NotFound(id); not Claimed or
   * another token → VersionConflict{0,1} (token first, memory semantics); stale epoch → Superseded at the
   * current epoch with `staleReason`, committed, then VersionConflict{dispatch_epoch, current}.
   */
  #owned(id: string, token: string, now: number, staleReason: string): RunDispatch {
    const d = this.#table.get(id);
    if (d === undefined) throw StorageError.notFound(id);
    if (d.status !== 'Claimed' || d.claim_token !== token) throw StorageError.versionConflict(0, 1);
    const current = this.#epochOf(d.thread_id);
    if (d.dispatch_epoch < current) {
      this.#commit(d, tx.superseded(d, now, current, staleReason));
      throw StorageError.versionConflict(d.dispatch_epoch, current);
    }
    return d;
  }

  /** Supersede the thread's stale-epoch Queued dispatches (every claim does this first). */
  #supersedeStaleQueued(thread: ThreadState, now: number): void {
    if (thread.staleQueued.size === 0) return;
    for (const id of [...thread.staleQueued]) {
      const d = this.#table.get(id);
      if (d !== undefined && d.status === 'Queued' && d.dispatch_epoch < thread.epoch) {
        this.#commit(d, tx.superseded(d, now, thread.epoch, REASON.queuedByEpoch));
      }
    }
  }

  /** Validate every next record first, then commit them all (all or nothing). */
  #commitAll(
    records: readonly RunDispatch[],
    next: (d: RunDispatch, i: number) => RunDispatch,
  ): RunDispatch[] {
    const nexts = records.map(next);
    nexts.forEach((d) => validateForPersist(d));
    return records.map((d, i) => this.#commit(d, nexts[i] as RunDispatch));
  }

  /** Validate and store one transition, with its index and signal bookkeeping. */
  #commit(prev: RunDispatch, next: RunDispatch): RunDispatch {
    validateForPersist(next);
    this.#table.replace(prev, next);
    if (prev.status === 'Queued' && next.status !== 'Queued') this.#republish.unset(prev.dispatch_id);
    if (next.status === 'Queued' && prev.status !== 'Queued') this.#enteredQueued(next);
    if (prev.status === 'Claimed' && next.status !== 'Claimed') this.#claimEnded(next.thread_id);
    if (isTerminal(next.status)) this.#signals?.discard([next.dispatch_id]);
    return next;
  }

  /**
   * A dispatch became Queued (enqueue, nack, lease expiry): signal it (unless `quiet`: an enqueue onto a
   * thread that holds a claim, left to the claim's holder and the hand-off) and schedule its republish.
   */
  #enteredQueued(d: RunDispatch, quiet = false): void {
    if (this.#signals === null) return;
    const ref = { thread_id: d.thread_id, dispatch_id: d.dispatch_id };
    if (!quiet) {
      this.#signals.publishNow([ref]);
      if (this.#options.quietClaimedThreads) {
        this.#handOffAfterCall();
        this.#signalledInCall.add(d.dispatch_id);
      }
    }
    this.#republish.set(ref, Math.max(d.available_at, Date.now() + this.#options.republishAfterMs));
  }

  /**
   * `quietClaimedThreads`: a claim of `threadId` ended. Once the current call is over (a chained claim may
   * take the thread again in the same call), the thread is handed off (`#handOff`).
   */
  #claimEnded(threadId: string): void {
    if (this.#signals === null || !this.#options.quietClaimedThreads) return;
    this.#handOffAfterCall();
    this.#released.add(threadId);
  }

  /** Run `#handOff` once the current call is over (every store call runs synchronously to its end). */
  #handOffAfterCall(): void {
    if (this.#handOffPending) return;
    this.#handOffPending = true;
    queueMicrotask(() => this.#handOff());
  }

  /**
   * `quietClaimedThreads`: every thread whose claim ended and that nobody claimed again may hold dispatches
   * enqueued while it was claimed, which got no signal: its head (the first ready dispatch, else the
   * earliest waiting one) is signalled now, unless the same call signalled it (a requeue). As the Redis
   * store's scripts do at the end of the call.
   */
  #handOff(): void {
    this.#handOffPending = false;
    const signals = this.#signals;
    const released = [...this.#released];
    const signalled = new Set(this.#signalledInCall);
    this.#released.clear();
    this.#signalledInCall.clear();
    if (signals === null || this.#closed) return;
    const now = Date.now();
    for (const threadId of released) {
      const thread = this.#table.thread(threadId);
      if (thread === undefined || thread.size('Claimed') > 0) continue;
      const head = thread.ready.first() ?? thread.waiting.first();
      if (head === undefined || signalled.has(head.dispatch_id)) continue;
      const ref = { thread_id: threadId, dispatch_id: head.dispatch_id };
      // A head due later than a consumer parks a signal is signalled by the sweeper once available.
      if (head.available_at - now <= MAX_PARKED_SIGNAL_MS) {
        signals.publishNow([ref]);
        this.#republish.set(ref, Math.max(head.available_at, now + this.#options.republishAfterMs));
      } else {
        this.#republish.set(ref, head.available_at);
      }
    }
  }
}

/** `releaseClaim`'s argument: exactly one of a dispatch id or a thread id. */
function claimRefArg(ref: unknown): ClaimRef {
  if (typeof ref !== 'object' || ref === null) throw StorageError.validation('ref must be an object');
  const r = ref as Record<string, unknown>;
  if (r.dispatchId !== undefined && r.threadId === undefined) {
    return { dispatchId: args.id('ref.dispatch_id', r.dispatchId) };
  }
  if (r.threadId !== undefined && r.dispatchId === undefined) {
    return { threadId: args.id('ref.thread_id', r.threadId) };
  }
  throw StorageError.validation('ref must name exactly one of dispatchId or threadId');
}

/** Merge per-status lists (each in queue order) into one ordered page: skip `offset`, take `limit`. */
function mergeOrdered(
  lists: readonly SortedList<RunDispatch>[],
  offset: number,
  limit: number,
): RunDispatch[] {
  if (lists.length === 0) return [];
  if (lists.length === 1) return (lists[0] as SortedList<RunDispatch>).slice(offset, limit);
  const iterators = lists.map((l) => l.values());
  const heads = iterators.map((it) => it.next());
  const out: RunDispatch[] = [];
  let skipped = 0;
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i] as IteratorResult<RunDispatch>;
      if (h.done) continue;
      if (
        best < 0 ||
        compareQueueOrder(h.value, (heads[best] as IteratorYieldResult<RunDispatch>).value) < 0
      ) {
        best = i;
      }
    }
    if (best < 0) return out;
    const head = heads[best] as IteratorYieldResult<RunDispatch>;
    if (skipped < offset) skipped += 1;
    else out.push(head.value);
    if (out.length >= limit) return out;
    heads[best] = (iterators[best] as Generator<RunDispatch>).next();
  }
}

/**
 * The Mailbox service: the dispatch loop a runtime plugs its executor into (after the Awaken server's).
 * Works on any `MailboxStore`. One run at a time per thread on this node; the store's claim guarantees one at a
 * time per thread across nodes; at most `config.concurrency` runs at once on this node. The store is the
 * caller's: `stop()` releases everything of the Mailbox and leaves the store open.
 *
 * With a `HandBackMailboxStore` (both built-in stores) claim tokens are minted here, so a claim whose reply
 * was lost is released once the store answers again, and a run cut short by `stop()` goes back to the queue
 * without counting an attempt.
 */
import { EventEmitter } from 'node:events';
import { uuidV7 as uuidv7 } from '../util/uuid.js';
import * as args from '../contract/args.js';
import { StorageError, isStorageError } from '../contract/errors.js';
import {
  isFusedStore,
  isHandBackStore,
  type ClaimRef,
  type HandBackMailboxStore,
} from '../contract/fused.js';
import { queuedDispatch } from '../contract/helpers.js';
import { isDeadLetterStore, type RequeueDeadLetterOptions } from '../contract/dead-letters.js';
import { isCancelRequestStore, runControlReader, type RunControl } from '../contract/cancel-requests.js';
import { autoInstrumentMailbox } from '../metrics/mailbox-metrics.js';
import type { MailboxStore } from '../contract/store.js';
import type { DispatchSignalEntry, Message, RunDispatch, ToolCallResume } from '../contract/types.js';
import { silentLogger } from '../util/logger.js';
import { OutageLog } from '../util/outage-log.js';
import type { Logger } from '../util/logger.js';
import { ActiveRun, type LiveCancelReason } from './active-run.js';
import { signalNackDelayMs } from './backoff.js';
import { deliverLocally } from './command-inbox.js';
import {
  FAILED_SIGNAL_RETRY_MS,
  INLINE_CLAIM_GUARD_MS,
  RECLAIM_BATCH,
  resolveMailboxConfig,
} from './config.js';
import { MailboxStoppedError, errorMessage } from './errors.js';
import { EpochWatch } from './epoch-watch.js';
import { executeClaimed, handBack, startedClaim } from './execution.js';
import type { ExecutionDeps, PreStarted } from './execution.js';
import { LeaseRenewer } from './lease-renewer.js';
import { targetOf } from './records.js';
import { RecentSubmissions } from './recent-submissions.js';
import { parseDecision, parseMessages, parseSubmit } from './requests.js';
import { RunSlots } from './run-slots.js';
import { SignalLoop } from './signal-loop.js';
import { ThreadWorkers } from './thread-workers.js';
import type { ThreadWorker } from './thread-workers.js';
import { RunLiveChannels, hasLiveCommands } from './thread-live.js';
import { PeriodicTask, forEachLimited, settlesWithin, sleep } from './timing.js';
import type {
  Executor,
  LeftBehindRun,
  MailboxApi,
  MailboxConfig,
  MailboxEvents,
  MailboxOptions,
  MailboxStopReport,
  MessageSink,
  QueuedMessages,
  SubmitRequest,
  SubmitResult,
} from './types.js';

/** How long a local `sendMessages` / `sendDecision` waits for the executor's ack (the NATS request timeout). */
const LOCAL_ACK_TIMEOUT_MS = 5_000;
/** Reclaim pages per sweep / recovery: bounded, and more than upstream's single page. */
const MAX_RECLAIM_PAGES = 10;
/** Threads tried per idle-poll tick (stores without signals). */
const IDLE_POLL_MAX_THREADS = 1_000;
/**
 * After `stop()` aborts the runs left at the end of the grace period, how long they (and claims in flight)
 * get to settle: a hand-back is one store write.
 */
const STOP_SETTLE_MS = 500;
/** Releasing a claim whose reply was lost: first retry delay, and the most between two retries. */
const LOST_CLAIM_RETRY_MS = 50;
const LOST_CLAIM_MAX_RETRY_MS = 1_000;
/** Claimed dispatches of one run id `cancel` looks at (a run has one claim in practice). */
const CANCEL_LOOKUP_LIMIT = 10;
const ACTIVE_RUN_CONFLICT = 'thread has an active run; cannot claim inline';

/** Result of `#tryDispatchNext` (the server's `try_dispatch_next`), plus `Stopping` while `stop()` runs. */
type TryResult =
  | { kind: 'Claimed'; dispatch: RunDispatch }
  | { kind: 'Busy' }
  | { kind: 'NoEligible' }
  | { kind: 'TransientError' }
  /**
   * The claim failed on corrupt data (`Serialization`): retrying at once cannot help. The record needs a
   * repair; the sweeper signals a still-Queued dispatch again after its republish delay.
   */
  | { kind: 'Corrupt' }
  /** This Mailbox already runs `config.concurrency` runs; the thread waits for a free slot. */
  | { kind: 'Saturated' }
  | { kind: 'Stopping' };

type State = 'new' | 'starting' | 'started' | 'stopping' | 'stopped';

/** A dispatch this node just claimed; `preStarted` when a fused store recorded its start in the same step. */
interface Claim {
  dispatch: RunDispatch;
  preStarted: PreStarted | null;
}

export class Mailbox extends EventEmitter<MailboxEvents> implements MailboxApi {
  readonly consumerId: string;
  readonly config: MailboxConfig;
  readonly #store: MailboxStore;
  readonly #logger: Logger;
  /** Failure logging of the periodic tasks (`#guard`), one `OutageLog` per task. */
  readonly #taskOutages = new Map<string, OutageLog>();
  readonly #messageSink: MessageSink | null;
  readonly #deps: ExecutionDeps;
  readonly #workers = new ThreadWorkers();
  readonly #live: RunLiveChannels;
  /** Interrupts from other nodes for runs without a live channel (see epoch-watch.ts); null when off. */
  readonly #epochWatch: EpochWatch | null;
  /** The epoch and cancel-request read of the epoch watch and of every lease renewal (one per Mailbox). */
  readonly #readControl: (threadId: string) => Promise<RunControl>;
  /** Active runs on this node by dispatch id. */
  readonly #runs = new Map<string, ActiveRun>();
  readonly #recent = new RecentSubmissions();
  /** Fire-and-forget work (try_dispatch_next kicks) that `stop()` waits for. */
  readonly #background = new Set<Promise<unknown>>();
  #state: State = 'new';
  #startPromise: Promise<void> | null = null;
  #stopPromise: Promise<MailboxStopReport> | null = null;
  #signalLoop: SignalLoop | null = null;
  readonly #periodic: PeriodicTask[] = [];
  #idlePollOffset = 0;
  readonly #slots: RunSlots;
  /** Claim tokens are `<prefix>.<sequence>`: unique without a random draw per claim. */
  readonly #tokenPrefix = uuidv7();
  #tokenSeq = 0;
  /** Hand-backs counted for the stop report. */
  #handedBack = 0;
  readonly #liveCancelReason: LiveCancelReason;

  constructor(options: MailboxOptions) {
    super();
    if (!options || typeof options !== 'object') throw StorageError.validation('options must be an object');
    const { store, executor } = options;
    if (!store || typeof store !== 'object' || typeof store.claim !== 'function') {
      throw StorageError.validation('store must be a MailboxStore');
    }
    if (typeof executor !== 'function') throw StorageError.validation('executor must be a function');
    if (options.messageSink !== undefined && typeof options.messageSink !== 'function') {
      throw StorageError.validation('messageSink must be a function');
    }
    const preStartCheck = options.preStartCheck ?? 'full';
    if (preStartCheck !== 'full' && preStartCheck !== 'none') {
      throw StorageError.validation("preStartCheck must be 'full' or 'none'");
    }
    this.consumerId = options.consumerId === undefined ? uuidv7() : args.id('consumerId', options.consumerId);
    this.config = resolveMailboxConfig(options.config ?? {});
    this.#store = store;
    this.#logger = options.logger ?? silentLogger;
    this.#messageSink = options.messageSink ?? null;
    this.#slots = new RunSlots(this.config.concurrency);
    // A live Cancel stands for an interrupt when the thread's epoch moved past the claim: the run is then
    // aborted with `interrupt`, as a local interrupt would.
    this.#liveCancelReason = async (run) =>
      (await store.currentDispatchEpoch(run.dispatch.thread_id)) > run.dispatch.dispatch_epoch
        ? 'interrupt'
        : 'cancel';
    // A thread is held here while its worker's run executes with its lease intact (see thread-live.ts).
    this.#live = new RunLiveChannels(
      store,
      this.#logger,
      (threadId) => {
        const run = this.#workers.get(threadId)?.run;
        return run != null && !run.leaseLost;
      },
      this.config.liveSubscriptionLingerMs,
    );
    this.#readControl = runControlReader(store);
    this.#epochWatch =
      this.config.epochPollIntervalMs === 0
        ? null
        : new EpochWatch({
            readControl: this.#readControl,
            intervalMs: this.config.epochPollIntervalMs,
            runs: () => this.#runs.values(),
            logger: this.#logger,
          });
    this.#deps = {
      store,
      executor: executor as Executor,
      config: this.config,
      logger: this.#logger,
      preStartCheck,
      emit: (event, ...eventArgs) => {
        if (event === 'handedBack') this.#handedBack++;
        this.#emit(event, ...eventArgs);
      },
      scheduleWake: (threadId, at) => this.#scheduleWake(threadId, at),
      // Not while stopping, and not while other threads wait for a run slot (they get this one next).
      nextClaim: (threadId) => {
        if (this.#closing || this.#slots.contended) return null;
        const worker = this.#workers.get(threadId);
        if (worker) worker.wakesAtChainedClaim = worker.busyWakes;
        return {
          threadId,
          consumerId: this.consumerId,
          leaseMs: this.config.leaseMs,
          dispatchInstanceId: uuidv7(),
          claimToken: this.#mintToken(),
        };
      },
      releaseLostClaim: (ref, token) => this.#releaseLostClaim(ref, token),
      openLive: this.#live.enabled ? (target) => this.#live.open(target) : null,
    };
    // Metrics (src/metrics): only when an OpenTelemetry SDK is installed; otherwise nothing changes.
    autoInstrumentMailbox(this);
  }

  /** Number of runs executing on this node right now. */
  get activeRuns(): number {
    return this.#runs.size;
  }

  /**
   * Startup recovery (reclaim expired leases, then try every thread with queued work), then the signal
   * loop (or the idle poll when the store has no signals), sweep and GC. A recovery error rejects and leaves the
   * Mailbox unstarted, so `start()` may be called again.
   */
  start(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped')
      return Promise.reject(new MailboxStoppedError());
    this.#startPromise ??= this.#start().catch((err: unknown) => {
      this.#startPromise = null;
      if (this.#state === 'starting') this.#state = 'new';
      throw err;
    });
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    await this.#recover();
    if (this.#state !== 'starting') return; // stop() was called during recovery
    const { config } = this;
    if (this.#store.supportsDispatchSignals()) {
      this.#signalLoop = new SignalLoop({
        store: this.#store,
        batchSize: config.signalBatchSize,
        fetchExpiresMs: config.signalFetchExpiresMs,
        maxConcurrentHandlers: config.concurrency,
        capacity: this.#slots,
        handle: (entry) => this.#handleSignal(entry),
        logger: this.#logger,
      });
      this.#signalLoop.start();
    } else {
      this.#periodic.push(
        new PeriodicTask(config.idlePollIntervalMs, () => this.#guard('idle poll', () => this.#pollIdle())),
      );
    }
    this.#periodic.push(
      new PeriodicTask(config.sweepIntervalMs, () => this.#guard('sweep', () => this.#reclaimExpired())),
      new PeriodicTask(config.gcIntervalMs, () => this.#guard('gc', () => this.#gc())),
    );
    for (const task of this.#periodic) task.start();
    this.#state = 'started';
    this.#logger.info?.('mailbox started', {
      consumerId: this.consumerId,
      signals: this.#signalLoop !== null,
    });
  }

  /** Foreground: interrupt the thread, wait for its active run to release, enqueue, claim by id, run. */
  submit(req: SubmitRequest): Promise<SubmitResult> {
    if (this.#closing) return Promise.reject(new MailboxStoppedError());
    return this.#track(this.#submit(req));
  }

  async #submit(req: SubmitRequest): Promise<SubmitResult> {
    const r = parseSubmit(req, this.config.defaultMaxAttempts);
    await this.#interruptForSubmit(r.threadId);

    const now = Date.now();
    const base = {
      dispatch_id: r.dispatchId,
      thread_id: r.threadId,
      run_id: r.runId,
      created_at: now,
      priority: r.priority,
      dedupe_key: r.dedupeKey,
      max_attempts: r.maxAttempts,
    };
    if (!this.#slots.tryTake()) {
      // Every run slot is busy: queue it, available now, for whichever node has room first.
      await this.#store.enqueue(queuedDispatch(base));
      this.#recent.remember(r.runId, { dispatchId: r.dispatchId, threadId: r.threadId });
      this.#slots.defer(r.threadId);
      return { dispatchId: r.dispatchId, runId: r.runId, status: 'Queued' };
    }
    let slotHeld = true;
    const worker = this.#workers.ensure(r.threadId);
    try {
      await this.#store.enqueue(queuedDispatch({ ...base, available_at: now + INLINE_CLAIM_GUARD_MS }));
      this.#recent.remember(r.runId, { dispatchId: r.dispatchId, threadId: r.threadId });
      worker.claiming++;
      let claimed: Claim | null;
      try {
        claimed = await this.#claimById(r.dispatchId);
      } finally {
        worker.claiming--;
      }
      if (claimed) {
        slotHeld = false; // the run holds it now
        this.#launch(worker, claimed);
        if (this.#closing) throw new MailboxStoppedError();
        return { dispatchId: r.dispatchId, runId: r.runId, status: 'Running' };
      }
    } finally {
      if (slotHeld) this.#giveSlot();
    }
    await this.#cancelUnclaimed(r.dispatchId);
    if (worker.recheck) this.#kick(r.threadId);
    throw StorageError.validation(ACTIVE_RUN_CONFLICT);
  }

  /** Background: enqueue, then run it now if this node's worker for the thread is idle. */
  submitBackground(req: SubmitRequest): Promise<SubmitResult> {
    if (this.#closing) return Promise.reject(new MailboxStoppedError());
    return this.#track(this.#submitBackground(req));
  }

  async #submitBackground(req: SubmitRequest): Promise<SubmitResult> {
    const r = parseSubmit(req, this.config.defaultMaxAttempts);
    const now = Date.now();
    await this.#store.enqueue(
      queuedDispatch({
        dispatch_id: r.dispatchId,
        thread_id: r.threadId,
        run_id: r.runId,
        created_at: now,
        priority: r.priority,
        dedupe_key: r.dedupeKey,
        max_attempts: r.maxAttempts,
      }),
    );
    this.#recent.remember(r.runId, { dispatchId: r.dispatchId, threadId: r.threadId });
    let status: SubmitResult['status'] = 'Queued';
    // A busy worker answers at once and looks again when its run ends.
    const result = await this.#tryDispatchNext(r.threadId);
    if (result.kind === 'Claimed' && result.dispatch.dispatch_id === r.dispatchId) status = 'Running';
    return { dispatchId: r.dispatchId, runId: r.runId, status };
  }

  /** Bump the thread's epoch, supersede its queued work, cancel its active run (locally or live). No wait. */
  async interrupt(
    threadId: string,
  ): Promise<{ newDispatchEpoch: number; supersededCount: number; activeCancelled: boolean }> {
    this.#assertOpen();
    args.id('threadId', threadId);
    const details = await this.#store.interruptDetailed(threadId, Date.now());
    for (const d of details.superseded_dispatches) this.#emit('superseded', d);
    let activeCancelled = false;
    const active = details.active_dispatch;
    if (active) {
      const local = this.#runs.get(active.dispatch_id);
      if (local) activeCancelled = local.abort('interrupt') || local.abortReason !== null;
      else activeCancelled = (await this.#deliverCancel(active)) === 'Delivered';
    }
    return {
      newDispatchEpoch: details.new_dispatch_epoch,
      supersededCount: details.superseded_count,
      activeCancelled,
    };
  }

  /**
   * `id` may be a dispatch id, a thread id, or a run id, of work on any node. Queued → Cancelled; running
   * here → aborted; claimed elsewhere → live Cancel to its exact target (run ids of other nodes' runs are
   * found through the store's claimed dispatches, with a `HandBackMailboxStore`). On a store without live
   * commands (such as the Redis store without NATS) the cancel is recorded in the store for the run's claim
   * instead (`requestRunCancel`, stores with cancel requests) and the run's node aborts it with `cancel` at
   * its next epoch check (`epochPollIntervalMs`) or lease renewal, whichever comes first. A Queued dispatch
   * is only found by its dispatch id, or by a run id submitted on this node.
   */
  async cancel(id: string): Promise<boolean> {
    this.#assertOpen();
    args.id('id', id);
    const known = this.#recent.get(id);
    const now = Date.now();
    let cancelled = await this.#store.cancel(id, now);
    if (!cancelled && known && known.dispatchId !== id)
      cancelled = await this.#store.cancel(known.dispatchId, now);
    if (cancelled) {
      this.#emit('cancelled', cancelled);
      return true;
    }
    const local = this.#findLocalRun(id) ?? this.#workers.get(id)?.run ?? null;
    if (local?.executing) {
      local.abort('cancel');
      return true;
    }
    // Our own run, already settling: it ends as its executor returned; nothing is left to cancel.
    const settlingHere = local !== null;
    const recordRequests = !settlingHere && !hasLiveCommands(this.#store);
    for (const claimed of await this.#findClaimed(id, known?.dispatchId)) {
      if (recordRequests) {
        if (await this.#requestCancel(claimed)) return true;
      } else if ((await this.#deliverCancel(claimed)) === 'Delivered') return true;
    }
    return false;
  }

  /** Record a cancel for a claim no live command can reach; true when that claim still held (see `cancel`). */
  async #requestCancel(claimed: RunDispatch): Promise<boolean> {
    const store = this.#store;
    if (claimed.claim_token === null || !isCancelRequestStore(store)) return false;
    return store.requestRunCancel(claimed.dispatch_id, claimed.claim_token);
  }

  /** The Claimed dispatches `id` names: as a dispatch id, else a thread id, else a run id. */
  async #findClaimed(id: string, knownDispatchId: string | undefined): Promise<RunDispatch[]> {
    const loaded = await this.#store.loadDispatch(knownDispatchId ?? id);
    if (loaded) return loaded.status === 'Claimed' ? [loaded] : [];
    const byThread = await this.#store.listDispatches(id, ['Claimed'], 1, 0);
    if (byThread.length > 0) return byThread;
    const store = this.#store;
    return isHandBackStore(store) ? store.listClaimedByRunId(id, CANCEL_LOOKUP_LIMIT) : [];
  }

  /**
   * Put a dead-lettered dispatch back in the queue (the store's `requeueDeadLetter`: Queued now, at its
   * thread's current epoch, signalled; `resetAttempts` gives it its full max_attempts again) and try its thread
   * here. Refused with `AlreadyExists` when a live dispatch holds its dedupe key, `Validation` when it is not
   * dead, `NotFound` when it does not exist. Needs a store with the dead-letter additions (both built-in ones).
   */
  async retryDeadLetter(dispatchId: string, options?: RequeueDeadLetterOptions): Promise<RunDispatch> {
    this.#assertOpen();
    const store = this.#store;
    if (!isDeadLetterStore(store)) throw StorageError.validation('the store has no dead-letter operations');
    const requeued = await store.requeueDeadLetter(dispatchId, Date.now(), options);
    this.#kick(requeued.thread_id);
    return requeued;
  }

  /** A tool-call decision to the run of `dispatchId` (or a run id known here); no durable fallback. */
  async sendDecision(dispatchId: string, toolCallId: string, resume: ToolCallResume): Promise<boolean> {
    this.#assertOpen();
    args.id('dispatchId', dispatchId);
    const command = parseDecision(toolCallId, resume);
    const local = this.#findLocalRun(dispatchId);
    // Our own run: it takes the decision only while its executor reads commands.
    if (local) return local.acceptsCommands && deliverLocally(local.inbox, command, LOCAL_ACK_TIMEOUT_MS);
    const loaded = await this.#store.loadDispatch(this.#recent.get(dispatchId)?.dispatchId ?? dispatchId);
    if (loaded?.status !== 'Claimed') return false;
    return (await this.#store.deliverLiveTo(targetOf(loaded), command)) === 'Delivered';
  }

  /**
   * Live to the thread's running run (on this node, else its claimed dispatch's exact target) when it
   * accepts them; otherwise a durable dispatch (see `QueuedMessages`). `opts.runId` restricts live delivery to
   * that run. Delivery is at-least-once.
   */
  sendMessages(threadId: string, messages: Message[], opts?: { runId?: string }): Promise<'live' | 'queued'> {
    if (this.#closing) return Promise.reject(new MailboxStoppedError());
    return this.#track(this.#sendMessages(threadId, messages, opts));
  }

  async #sendMessages(
    threadId: string,
    messages: Message[],
    opts?: { runId?: string },
  ): Promise<'live' | 'queued'> {
    args.id('threadId', threadId);
    const runId = opts?.runId == null ? null : args.id('runId', opts.runId);
    const parsed = parseMessages(messages);
    const command = { Messages: parsed };
    const local = this.#workers.get(threadId)?.run ?? null;
    if (local !== null) {
      // The thread's run is on this node: live only when its executor reads commands, otherwise queued at
      // once (never a live request to ourselves that nobody would answer).
      if (
        local.acceptsCommands &&
        (runId === null || local.dispatch.run_id === runId) &&
        (await deliverLocally(local.inbox, command, LOCAL_ACK_TIMEOUT_MS))
      ) {
        return 'live';
      }
    } else {
      const [claimed] = await this.#store.listDispatches(threadId, ['Claimed'], 1, 0);
      if (claimed && (runId === null || claimed.run_id === runId)) {
        if ((await this.#store.deliverLiveTo(targetOf(claimed), command)) === 'Delivered') return 'live';
      }
    }
    await this.#queueMessages(threadId, parsed);
    return 'queued';
  }

  /**
   * Stop pulling, let running executors finish for up to `stopGraceMs`, then abort the rest (`shutdown`); each
   * aborted run hands its dispatch back (Queued, available at once, attempt count unchanged) for another
   * node. Bounded: resolves at most about `STOP_SETTLE_MS` after the grace period, with a report of what it
   * left behind. An executor that ignores the abort keeps its claim (renewed) until it returns, so its thread
   * is never run elsewhere meanwhile. Stops every timer of the Mailbox itself; the store stays open (the caller
   * owns it). Idempotent.
   */
  stop(): Promise<MailboxStopReport> {
    this.#stopPromise ??= this.#shutdown();
    return this.#stopPromise;
  }

  // ---- internals ----

  get #closing(): boolean {
    return this.#state === 'stopping' || this.#state === 'stopped';
  }

  #assertOpen(): void {
    if (this.#closing) throw new MailboxStoppedError();
  }

  #emit<K extends keyof MailboxEvents>(event: K, ...eventArgs: MailboxEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: MailboxEvents[K]) => boolean)(event, ...eventArgs);
    } catch (err) {
      this.#logger.error?.('mailbox event listener threw', { event, error: errorMessage(err) });
    }
  }

  async #guard(what: string, task: () => Promise<void>): Promise<void> {
    // One warning per outage of each periodic task (and one line when it recovers), not one per tick.
    let outage = this.#taskOutages.get(what);
    if (outage === undefined) this.#taskOutages.set(what, (outage = new OutageLog(this.#logger, what)));
    try {
      await task();
      outage.succeeded();
    } catch (err) {
      outage.failed(err);
    }
  }

  #findLocalRun(id: string): ActiveRun | null {
    const byDispatch = this.#runs.get(id) ?? this.#runs.get(this.#recent.get(id)?.dispatchId ?? '');
    if (byDispatch) return byDispatch;
    for (const run of this.#runs.values()) if (run.dispatch.run_id === id) return run;
    return null;
  }

  /** Remember work in flight so `stop()` can wait for it (bounded) before it returns. */
  #track<T>(work: Promise<T>): Promise<T> {
    const tracked = work.finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
    return tracked;
  }

  /** try_dispatch_next in the background. */
  #kick(threadId: string): void {
    if (this.#closing) return;
    void this.#track(this.#tryDispatchNext(threadId));
  }

  /** Wait until no tracked work is left, at most until `deadline`. */
  async #drainBackground(deadline: number): Promise<void> {
    while (this.#background.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.#logger.warn?.('stop: giving up on background work still in flight', {
          pending: this.#background.size,
        });
        return;
      }
      await settlesWithin(Promise.allSettled([...this.#background]), left);
    }
  }

  /**
   * Claim and start the thread's next dispatch when this node's worker for it is idle, with a re-check when
   * work was signalled while the claim was in flight.
   */
  async #tryDispatchNext(threadId: string): Promise<TryResult> {
    if (this.#closing) return { kind: 'Stopping' };
    const worker = this.#workers.ensure(threadId);
    if (worker.run || worker.claiming > 0) {
      worker.recheck = true;
      worker.busyWakes++;
      return { kind: 'Busy' };
    }
    if (!this.#slots.tryTake()) {
      this.#slots.defer(threadId);
      this.#live.release(threadId);
      return { kind: 'Saturated' };
    }
    let slotHeld = true;
    worker.claiming++;
    this.#live.prepare(threadId);
    try {
      for (let round = 0; round < 2; round++) {
        worker.recheck = false;
        let claimed: Claim | null;
        try {
          claimed = await this.#claimNext(threadId);
        } catch (err) {
          this.#logger.warn?.('claim failed', { threadId, error: errorMessage(err) });
          return isStorageError(err, 'Serialization') ? { kind: 'Corrupt' } : { kind: 'TransientError' };
        }
        if (claimed) {
          slotHeld = false; // the run holds it now
          this.#launch(worker, claimed);
          return { kind: 'Claimed', dispatch: claimed.dispatch };
        }
        if (!worker.recheck || this.#closing) break;
      }
      return { kind: 'NoEligible' };
    } finally {
      worker.claiming--;
      if (slotHeld) this.#giveSlot();
      // Nothing of the thread runs here any more: its live subscription goes too.
      if (worker.run === null && worker.claiming === 0) this.#live.release(threadId);
    }
  }

  /** A run slot is free again: the thread that waited longest for one is tried now. */
  #giveSlot(): void {
    const waiting = this.#slots.give();
    if (waiting !== null) this.#kick(waiting);
  }

  /** A claim token minted here (hand-back stores only; other stores mint their own). */
  #mintToken(): string | undefined {
    if (!isHandBackStore(this.#store)) return undefined;
    this.#tokenSeq++;
    return `${this.#tokenPrefix}.${this.#tokenSeq.toString(36)}`;
  }

  /**
   * A claim call failed: it may have committed anyway (the reply was lost). Its token is ours, so whatever
   * it holds is released once the store answers again; a Validation error never reached the store.
   */
  #afterFailedClaim(ref: ClaimRef, token: string | undefined, err: unknown): void {
    if (token !== undefined && !isStorageError(err, 'Validation')) this.#releaseLostClaim(ref, token);
  }

  /**
   * Release whatever `token` holds at `ref` (a claim whose reply was lost), retrying with backoff until the
   * store answers, at most for one lease: past it the lease has expired and the sweep has the dispatch.
   * Costs no attempt; the thread is free again at once instead of after the lease.
   */
  #releaseLostClaim(ref: ClaimRef, token: string): void {
    const store = this.#store;
    if (!isHandBackStore(store)) return;
    void this.#track(this.#releaseLost(store, ref, token, Date.now() + this.config.leaseMs));
  }

  async #releaseLost(
    store: HandBackMailboxStore,
    ref: ClaimRef,
    token: string,
    giveUpAt: number,
  ): Promise<void> {
    let delay = LOST_CLAIM_RETRY_MS;
    for (;;) {
      try {
        const released = await store.releaseClaim(ref, token, Date.now());
        for (const d of released) {
          this.#logger.info?.('released a claim whose reply was lost', {
            dispatchId: d.dispatch_id,
            threadId: d.thread_id,
            status: d.status,
          });
          if (d.status === 'Superseded') this.#emit('superseded', d);
          else this.#kick(d.thread_id);
        }
        return;
      } catch (err) {
        if (
          isStorageError(err, 'Validation') ||
          this.#state === 'stopped' ||
          Date.now() + delay >= giveUpAt
        ) {
          this.#logger.warn?.(
            'could not release a claim whose reply was lost; it returns when its lease expires',
            {
              ...ref,
              error: errorMessage(err),
            },
          );
          return;
        }
        await sleep(delay);
        delay = Math.min(delay * 2, LOST_CLAIM_MAX_RETRY_MS);
      }
    }
  }

  /**
   * The thread's next dispatch: `claim(.., 1)`, or on a fused store `claimAndStart` (one round trip instead
   * of claim, pre-start check and start: the claim itself supersedes stale work and the start runs in the
   * same atomic step, so there is nothing left to check).
   */
  async #claimNext(threadId: string): Promise<Claim | null> {
    const store = this.#store;
    const { leaseMs } = this.config;
    const token = this.#mintToken();
    try {
      if (isFusedStore(store)) {
        const instanceId = uuidv7();
        const started = isHandBackStore(store)
          ? await store.claimAndStart(threadId, this.consumerId, leaseMs, Date.now(), instanceId, token)
          : await store.claimAndStart(threadId, this.consumerId, leaseMs, Date.now(), instanceId);
        return startedClaim(started, instanceId);
      }
      const [dispatch] = await store.claim(threadId, this.consumerId, leaseMs, Date.now(), 1);
      return dispatch ? { dispatch, preStarted: null } : null;
    } catch (err) {
      this.#afterFailedClaim({ threadId }, token, err);
      throw err;
    }
  }

  /** The inline claim by id of a foreground submit, fused with the start like `#claimNext`. */
  async #claimById(dispatchId: string): Promise<Claim | null> {
    const store = this.#store;
    const { leaseMs } = this.config;
    const token = this.#mintToken();
    try {
      if (isFusedStore(store)) {
        const instanceId = uuidv7();
        const now = Date.now();
        const started = isHandBackStore(store)
          ? await store.claimDispatchAndStart(dispatchId, this.consumerId, leaseMs, now, instanceId, token)
          : await store.claimDispatchAndStart(dispatchId, this.consumerId, leaseMs, now, instanceId);
        return startedClaim(started, instanceId);
      }
      const dispatch = await store.claimDispatch(dispatchId, this.consumerId, leaseMs, Date.now());
      return dispatch ? { dispatch, preStarted: null } : null;
    } catch (err) {
      this.#afterFailedClaim({ dispatchId }, token, err);
      throw err;
    }
  }

  /** Start executing a dispatch this node just claimed (lease renewal from now on). */
  #launch(worker: ThreadWorker, { dispatch, preStarted }: Claim): void {
    const run = new ActiveRun(dispatch, this.#logger, this.#liveCancelReason);
    if (this.#closing) {
      // Claimed while stopping: hand it straight back for another node (and its run slot with it).
      void this.#track(
        handBack(this.#deps, run, 'mailbox stopped before the run started').finally(() => this.#giveSlot()),
      );
      return;
    }
    worker.run = run;
    this.#runs.set(dispatch.dispatch_id, run);
    this.#epochWatch?.wake();
    run.attachRenewer(
      new LeaseRenewer({
        store: this.#store,
        dispatchId: dispatch.dispatch_id,
        claimToken: run.claimToken,
        intervalMs: this.config.leaseRenewalIntervalMs,
        leaseMs: this.config.leaseMs,
        suspendedLeaseMs: this.config.suspendedLeaseMs,
        threadId: dispatch.thread_id,
        dispatchEpoch: dispatch.dispatch_epoch,
        leaseUntil: dispatch.lease_until ?? Date.now() + this.config.leaseMs,
        onLost: () => run.loseLease(),
        onStale: () => run.abort('interrupt'),
        onCancelRequested: () => run.abort('cancel'),
        readControl: this.#readControl,
        logger: this.#logger,
      }),
    );
    this.#emit('claimed', dispatch);
    run.finished = (async () => {
      let next: Claim | null = null;
      try {
        next = await executeClaimed(this.#deps, run, preStarted);
      } catch (err) {
        this.#logger.error?.('run execution failed', { ...run.label, error: errorMessage(err) });
      } finally {
        await this.#finish(worker, run, next);
      }
    })();
  }

  /**
   * After a run: release the worker, close the run's channels, and run the thread's next dispatch: the one
   * the completion already claimed (`next`), else whatever a new claim finds.
   */
  async #finish(worker: ThreadWorker, run: ActiveRun, next: Claim | null): Promise<void> {
    await run.close();
    if (worker.run === run) worker.run = null;
    if (this.#runs.get(run.dispatch.dispatch_id) === run) this.#runs.delete(run.dispatch.dispatch_id);
    if (next !== null) {
      if (worker.run === null) {
        this.#launch(worker, next);
        return;
      }
      // Unreachable while the store keeps threads exclusive; never leave a claim behind if it happens.
      const stray = new ActiveRun(next.dispatch, this.#logger);
      void this.#track(handBack(this.#deps, stray, 'the thread already runs on this node'));
    }
    this.#giveSlot();
    const threadId = run.dispatch.thread_id;
    // Stopping: no kick follows to release the thread's live subscription.
    if (this.#closing && worker.run === null) this.#live.release(threadId);
    if (
      run.chainedClaimFoundNothing &&
      worker.busyWakes === worker.wakesAtChainedClaim &&
      worker.run === null &&
      worker.claiming === 0
    ) {
      // The completion's own claim found the thread empty, and nothing was signalled here since it was sent:
      // another claim now could only find what that one did. Work enqueued after it carries its own wake-up.
      this.#live.release(threadId);
      return;
    }
    this.#kick(threadId);
  }

  async #interruptForSubmit(threadId: string): Promise<void> {
    let details;
    try {
      details = await this.#store.interruptDetailed(threadId, Date.now());
    } catch (err) {
      // Without the interrupt, at least stop our own run of the thread; otherwise give up.
      const local = this.#workers.get(threadId)?.run;
      if (!local) throw err;
      this.#logger.warn?.('interrupt failed; cancelling the local run', {
        threadId,
        error: errorMessage(err),
      });
      local.abort('interrupt');
      await settlesWithin(local.finished, this.config.remoteCancelWaitMs);
      return;
    }
    for (const d of details.superseded_dispatches) this.#emit('superseded', d);
    if (details.active_dispatch) await this.#waitForRelease(details.active_dispatch);
  }

  /**
   * Cancel the interrupted active run (locally, or by live Cancel to its exact target) and poll until its claim
   * is released, at most `remoteCancelWaitMs`. Unlike upstream, a live `NoSubscriber` does not fail at once: the
   * run may be releasing on its own, so the poll still runs to the bound.
   */
  async #waitForRelease(active: RunDispatch): Promise<void> {
    const { remoteCancelWaitMs, remoteCancelPollMs } = this.config;
    const deadline = Date.now() + remoteCancelWaitMs;
    const local = this.#runs.get(active.dispatch_id);
    if (local) {
      local.abort('interrupt');
      await settlesWithin(local.finished, remoteCancelWaitMs);
    } else {
      await this.#deliverCancel(active);
    }
    for (;;) {
      const current = await this.#store.loadDispatch(active.dispatch_id);
      if (!current || current.status !== 'Claimed' || current.claim_token !== active.claim_token) return;
      const left = deadline - Date.now();
      if (left <= 0) throw StorageError.validation(ACTIVE_RUN_CONFLICT);
      await sleep(Math.min(remoteCancelPollMs, left));
    }
  }

  async #deliverCancel(claimed: RunDispatch): Promise<'Delivered' | 'NoSubscriber'> {
    try {
      return await this.#store.deliverLiveTo(targetOf(claimed), 'Cancel');
    } catch (err) {
      this.#logger.warn?.('live cancel failed', {
        dispatchId: claimed.dispatch_id,
        error: errorMessage(err),
      });
      return 'NoSubscriber';
    }
  }

  /** A foreground submit's inline claim lost to another run; cancel our dispatch so it never runs later. */
  async #cancelUnclaimed(dispatchId: string): Promise<void> {
    try {
      const cancelled = await this.#store.cancel(dispatchId, Date.now());
      if (cancelled) {
        this.#emit('cancelled', cancelled);
        return;
      }
      const loaded = await this.#store.loadDispatch(dispatchId);
      if (loaded?.status === 'Superseded') this.#emit('superseded', loaded);
      else
        this.#logger.warn?.('unclaimed foreground dispatch not cancellable', {
          dispatchId,
          status: loaded?.status,
        });
    } catch (err) {
      this.#logger.warn?.('cancelling the unclaimed dispatch failed', {
        dispatchId,
        error: errorMessage(err),
      });
    }
  }

  async #queueMessages(threadId: string, messages: Message[]): Promise<void> {
    const stamped = messages.map((m) => (m.id ? m : { ...m, id: uuidv7() }));
    const dispatchId = stamped[0]?.id ?? uuidv7();
    const delivery: QueuedMessages = {
      threadId,
      runId: `durable-msg-${dispatchId}`,
      dispatchId,
      messages: stamped,
    };
    args.id('runId', delivery.runId);
    if (this.#messageSink) await this.#messageSink(delivery);
    const now = Date.now();
    try {
      await this.#store.enqueue(
        queuedDispatch({
          dispatch_id: dispatchId,
          thread_id: threadId,
          run_id: delivery.runId,
          created_at: now,
          max_attempts: this.config.defaultMaxAttempts,
        }),
      );
    } catch (err) {
      // The same messages were queued before (a retried send): the existing dispatch stands.
      if (isStorageError(err, 'AlreadyExists') && err.detail === dispatchId) return;
      throw err;
    }
    this.#recent.remember(delivery.runId, { dispatchId, threadId });
    this.#emit('messagesQueued', delivery);
    this.#kick(threadId);
  }

  /** One signal entry: try its thread, then ack, nack, or nack with a capped-backoff delay by the outcome. */
  async #handleSignal(entry: DispatchSignalEntry): Promise<void> {
    const { receipt } = entry;
    const attempts = receipt.redeliveryAttempts();
    const result = await this.#tryDispatchNext(entry.thread_id);
    const settle = (op: Promise<void>, what: string): Promise<void> =>
      op.catch((err: unknown) => {
        this.#logger.warn?.(`dispatch signal ${what} failed`, {
          dispatchId: entry.dispatch_id,
          error: errorMessage(err),
        });
      });
    // A failed claim or re-read: redeliver now, unless this delivery already was a redelivery.
    const retryFailed = (): Promise<void> =>
      attempts !== null && attempts > 1
        ? settle(receipt.nackWithDelay(FAILED_SIGNAL_RETRY_MS), 'nack with delay')
        : settle(receipt.nack(), 'nack');
    switch (result.kind) {
      case 'Claimed':
      case 'Busy':
        return settle(receipt.ack(), 'ack');
      case 'TransientError':
        return retryFailed();
      case 'Stopping':
        return settle(receipt.nack(), 'nack');
      case 'Corrupt':
        // An immediate redelivery would fail the same way, on every node, without end.
        return settle(receipt.ack(), 'ack');
      case 'Saturated':
        // No run slot here: leave it to a node with room, or to us a little later.
        return settle(
          receipt.nackWithDelay(
            signalNackDelayMs(attempts, this.config.signalNackBaseDelayMs, this.config.signalNackMaxDelayMs),
          ),
          'nack with delay',
        );
      case 'NoEligible': {
        let d: RunDispatch | null;
        try {
          d = await this.#store.loadDispatch(entry.dispatch_id);
        } catch (err) {
          this.#logger.warn?.('loading a signalled dispatch failed', {
            dispatchId: entry.dispatch_id,
            error: errorMessage(err),
          });
          // A corrupt record stays corrupt: ack (the sweeper signals it again once it is due) instead of
          // a redelivery loop.
          if (isStorageError(err, 'Serialization')) return settle(receipt.ack(), 'ack');
          return retryFailed();
        }
        if (d && d.status === 'Queued' && d.available_at <= Date.now()) {
          // Blocked by an active claim elsewhere: come back later, with backoff.
          const delay = signalNackDelayMs(
            attempts,
            this.config.signalNackBaseDelayMs,
            this.config.signalNackMaxDelayMs,
          );
          return settle(receipt.nackWithDelay(delay), 'nack with delay');
        }
        return settle(receipt.ack(), 'ack');
      }
    }
  }

  /** Wake the thread at `at` (a nacked dispatch's retry time); the earliest pending wake-up wins. */
  #scheduleWake(threadId: string, at: number): void {
    if (this.#closing) return;
    const worker = this.#workers.ensure(threadId);
    if (worker.wakeAt !== null && worker.wakeAt <= at) return;
    if (worker.wakeTimer) clearTimeout(worker.wakeTimer);
    worker.wakeAt = at;
    worker.wakeTimer = setTimeout(
      () => {
        worker.wakeTimer = null;
        worker.wakeAt = null;
        this.#kick(threadId);
      },
      Math.max(0, at - Date.now()) + 1,
    );
    worker.wakeTimer.unref();
  }

  /** Startup recovery: reclaim expired leases, then try every thread with queued work. */
  async #recover(): Promise<void> {
    await this.#reclaimExpired();
    const threads = await this.#store.queuedThreadIds();
    await forEachLimited(threads, this.config.concurrency, async (threadId) => {
      await this.#tryDispatchNext(threadId);
    });
  }

  /** The sweep (and the first step of recovery): reclaim expired leases; requeued dispatches run at once. */
  async #reclaimExpired(): Promise<void> {
    for (let page = 0; page < MAX_RECLAIM_PAGES && !this.#closing; page++) {
      const reclaimed = await this.#store.reclaimExpiredLeases(Date.now(), RECLAIM_BATCH);
      for (const d of reclaimed) {
        // A run of ours whose lease ran out (renewal failing) is no longer ours to finish.
        this.#runs.get(d.dispatch_id)?.loseLease();
        if (d.status === 'Queued') {
          this.#emit('retried', d, d.last_error ?? 'lease expired', d.available_at);
          this.#kick(d.thread_id);
        } else if (d.status === 'DeadLetter') {
          this.#emit('deadLettered', d, d.last_error ?? 'lease expired; max attempts reached');
        }
      }
      if (reclaimed.length < RECLAIM_BATCH) break;
    }
  }

  /** Stores without signals: try idle threads that have queued work (bounded, rotating through the list). */
  async #pollIdle(): Promise<void> {
    const threads = await this.#store.queuedThreadIds();
    if (threads.length === 0 || this.#closing) return;
    const count = Math.min(threads.length, IDLE_POLL_MAX_THREADS);
    const start = this.#idlePollOffset % threads.length;
    const batch: string[] = [];
    for (let i = 0; i < count; i++) {
      const threadId = threads[(start + i) % threads.length] as string;
      if (this.#workers.isIdle(threadId)) batch.push(threadId);
    }
    this.#idlePollOffset = start + count;
    await forEachLimited(batch, this.config.concurrency, async (threadId) => {
      await this.#tryDispatchNext(threadId);
    });
  }

  /**
   * GC: purge terminal records older than `gcTtlMs`. Workers are plain local state, so idle ones are dropped
   * without asking the store.
   */
  async #gc(): Promise<void> {
    const cutoff = Date.now() - this.config.gcTtlMs;
    if (cutoff > 0) {
      const purged = await this.#store.purgeTerminal(cutoff);
      if (purged > 0) this.#logger.debug?.('purged terminal dispatches', { purged });
    }
    this.#workers.dropIdle();
  }

  async #shutdown(): Promise<MailboxStopReport> {
    const wasStarted = this.#state !== 'new';
    this.#state = 'stopping';
    this.#handedBack = 0;
    this.#slots.wakeAll();
    this.#workers.clearWakeTimers();
    const { stopGraceMs } = this.config;
    // Pulls, timers and start-up recovery wind down while the runs get their grace period.
    const quiet = Promise.all([
      this.#signalLoop?.stop(),
      ...this.#periodic.map((t) => t.stop()),
      this.#startPromise?.catch(() => {}),
    ]);
    const settled = (): Promise<unknown> =>
      Promise.all([quiet, ...[...this.#runs.values()].map((r) => r.finished)]);
    const present = [...this.#runs.values()];
    if (present.length > 0) {
      this.#logger.info?.('waiting for running executors', { runs: present.length, graceMs: stopGraceMs });
    }
    await settlesWithin(settled(), stopGraceMs);
    const finished = present.filter((r) => !this.#runs.has(r.dispatch.dispatch_id)).length;

    // Past the grace period: abort what is left; each aborted run hands its dispatch back when it returns.
    for (const run of this.#runs.values()) run.abort('shutdown');
    const settleBy = Date.now() + STOP_SETTLE_MS;
    await settlesWithin(settled(), STOP_SETTLE_MS);
    await this.#drainBackground(settleBy);

    // Executors that ignore their AbortSignal keep their claims (renewed) until they return; handing the
    // thread to another node now would run it twice at once.
    const stillRunning: LeftBehindRun[] = [...this.#runs.values()]
      .filter((r) => r.executing)
      .map((r) => ({
        dispatchId: r.dispatch.dispatch_id,
        threadId: r.dispatch.thread_id,
        runId: r.dispatch.run_id,
      }));
    if (stillRunning.length > 0) {
      this.#logger.warn?.('stop: executors ignored the abort; their claims are kept until they return', {
        runs: stillRunning,
      });
    }
    await this.#live.closeIdle((threadId) => this.#workers.get(threadId)?.run != null);
    // Runs left behind (executors that ignore their abort) keep their lease renewal and its epoch check.
    this.#epochWatch?.stop();
    this.#state = 'stopped';
    const report: MailboxStopReport = { finished, handedBack: this.#handedBack, stillRunning };
    if (wasStarted) this.#logger.info?.('mailbox stopped', { consumerId: this.consumerId, ...report });
    return report;
  }
}

/**
 * Executing one claimed dispatch, as the Awaken server does: pre-start check, `recordDispatchStart`, the
 * executor with its AbortSignal and live commands, `recordRunResult`, then ack / nack with backoff /
 * dead-letter by outcome, with the ack-failure recovery (`ack` below). Every store error is logged, never
 * thrown: the claim's lease and the sweep are the safety net.
 *
 * With a `FusedMailboxStore` (src/contract/fused.ts) the claim already recorded the start in the same atomic
 * step (`claimAndStart` / `claimDispatchAndStart`, see `PreStarted`), and a completed run records its result
 * and acks in one call (`completeAndAck`). With a `HandBackMailboxStore` a run cut short by `stop()` is handed
 * back without counting as a failed attempt (`releaseClaim`).
 */
import { uuidV7 as uuidv7 } from '../util/uuid.js';
import { isStorageError } from '../contract/errors.js';
import {
  isFusedStore,
  isHandBackStore,
  type ClaimRef,
  type FusedMailboxStore,
  type NextClaim,
} from '../contract/fused.js';
import type { MailboxStore } from '../contract/store.js';
import type {
  LiveRunCommandStream,
  LiveRunTarget,
  RunDispatch,
  RunDispatchResult,
  RunStatus,
  TerminationReason,
} from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import type { ActiveRun } from './active-run.js';
import { retryDelayMs } from './backoff.js';
import { errorMessage, isPermanentError } from './errors.js';
import * as tx from '../contract/transitions.js';
import { targetOf } from './records.js';
import { RunContext } from './run-context.js';
import type { Executor, ExecutorContext, ExecutorOutcome, MailboxConfig, MailboxEvents } from './types.js';

export type EmitFn = <K extends keyof MailboxEvents>(event: K, ...args: MailboxEvents[K]) => void;

export interface ExecutionDeps {
  store: MailboxStore;
  executor: Executor;
  config: MailboxConfig;
  logger: Logger;
  /** 'full' = upstream's load + epoch check before start; 'none' relies on `recordDispatchStart`'s own checks. */
  preStartCheck: 'full' | 'none';
  emit: EmitFn;
  /** Try the thread again at `at` (a nacked dispatch's retry time). */
  scheduleWake(threadId: string, at: number): void;
  /**
   * On a fused store, the claim to chain onto a completed run's ack (`completeAndClaimNext`): the thread's
   * next dispatch starts in the same round trip. Null = do not chain (stopping).
   */
  nextClaim(threadId: string): NextClaim | null;
  /**
   * A claim whose reply was lost (the call failed, it may have committed): release whatever `claimToken`
   * holds there once the store answers again.
   */
  releaseLostClaim(ref: ClaimRef, claimToken: string): void;
  /**
   * The live command stream of a run (see thread-live.ts); null when no live command can reach this store's
   * runs (a Redis store without NATS): runs then get no channel at all, and only local steering.
   */
  openLive: ((target: LiveRunTarget) => Promise<LiveRunCommandStream>) | null;
}

/** A claim whose start the store recorded in the same step (claim + start, or completion + claim + start). */
export interface StartedClaim {
  /** The record as the claim alone left it (see `claimedBeforeStart`). */
  dispatch: RunDispatch;
  preStarted: PreStarted;
}

/** What the Mailbox does with the claim once the executor is done. */
type Settlement =
  | {
      kind: 'completed';
      status: RunStatus;
      termination: TerminationReason | null;
      response: string | null;
      error: string | null;
      /** The event the acked run is reported with: `cancelled` when cancel / interrupt ended it. */
      event: 'completed' | 'cancelled';
    }
  | { kind: 'retry'; error: string }
  | { kind: 'fail'; error: string }
  /** `stop()` cut the run short: hand it back so another node takes it at once. */
  | { kind: 'release'; error: string }
  /** The claim is gone (lease lost): nothing may be written. */
  | { kind: 'lost' };

const CANCELLED: Extract<Settlement, { kind: 'completed' }> = {
  kind: 'completed',
  status: 'done',
  termination: { type: 'cancelled' },
  response: null,
  error: null,
  event: 'cancelled',
};
const SHUTDOWN_ERROR = 'mailbox stopped before the run finished';

/** A claim whose start the store already recorded atomically with the claim (fused stores). */
export interface PreStarted {
  /** The record after the start, as the store returned it. */
  started: RunDispatch;
  instanceId: string;
}

/**
 * The record as the claim alone left it: a Queued record never carries runtime result fields, and the fused
 * claim + start stamps both at the same `now`, so only the start's fields differ.
 */
export function claimedBeforeStart(started: RunDispatch): RunDispatch {
  const d = tx.copyFields(started);
  d.dispatch_instance_id = null;
  d.run_status = null;
  d.termination = null;
  d.run_response = null;
  d.run_error = null;
  d.completed_at = null;
  return d;
}

/**
 * Run a claimed dispatch to its settlement. Resolves with the thread's next dispatch when the completion
 * also claimed and started it (`completeAndClaimNext`); the caller launches it.
 */
export async function executeClaimed(
  deps: ExecutionDeps,
  run: ActiveRun,
  preStarted: PreStarted | null = null,
): Promise<StartedClaim | null> {
  const begun = preStarted ?? (await begin(deps, run));
  if (begun === null) return null;
  if (preStarted !== null) await openLive(deps, run);
  const { started, instanceId } = begun;
  deps.emit('started', started, instanceId);

  run.phase = 'executing';
  const outcome = await runExecutor(deps, run, started, instanceId);
  // Renewals that failed past the lease deadline: another node may own the claim by now.
  const settlement: Settlement = run.leaseLost ? { kind: 'lost' } : outcome;
  run.phase = 'settling';
  run.stopRenewing();
  await run.endCommands();
  return settle(deps, run, started, instanceId, settlement);
}

/** The started claim a fused claim (+ start) answered, or null when it claimed nothing. */
export function startedClaim(started: RunDispatch | null, instanceId: string): StartedClaim | null {
  return started && { dispatch: claimedBeforeStart(started), preStarted: { started, instanceId } };
}

/** Pre-start check, `recordDispatchStart` and the live channel (opened meanwhile); null = do not run. */
async function begin(deps: ExecutionDeps, run: ActiveRun): Promise<PreStarted | null> {
  const { store, logger } = deps;
  const d = run.dispatch;
  const token = run.claimToken;

  if (deps.preStartCheck === 'full' && !(await preStartCheck(deps, run))) return null;

  const instanceId = uuidv7();
  const startedAt = Date.now();
  const [start, live] = await Promise.allSettled([
    store.recordDispatchStart(d.dispatch_id, token, instanceId, startedAt),
    deps.openLive?.(targetOf(d)) ?? null,
  ]);
  if (live.status === 'rejected') warnNoLive(deps, run, live.reason);
  else if (live.value !== null) run.attachLiveStream(live.value);
  if (start.status === 'rejected') {
    logger.warn?.('recording the dispatch start failed; not running', {
      ...run.label,
      error: errorMessage(start.reason),
    });
    await reconcile(deps, run);
    return null;
  }

  return { started: tx.dispatchStarted(d, instanceId, startedAt), instanceId };
}

async function openLive(deps: ExecutionDeps, run: ActiveRun): Promise<void> {
  if (deps.openLive === null) return;
  try {
    run.attachLiveStream(await deps.openLive(targetOf(run.dispatch)));
  } catch (err) {
    warnNoLive(deps, run, err);
  }
}

function warnNoLive(deps: ExecutionDeps, run: ActiveRun, err: unknown): void {
  deps.logger.warn?.('opening the live channel failed; running without live commands', {
    ...run.label,
    error: errorMessage(err),
  });
}

/** Before starting: the claim must still be ours and current; a stale one is superseded. */
async function preStartCheck(deps: ExecutionDeps, run: ActiveRun): Promise<boolean> {
  const { store, logger } = deps;
  const d = run.dispatch;
  let loaded: RunDispatch | null;
  let epoch: number;
  try {
    [loaded, epoch] = await Promise.all([
      store.loadDispatch(d.dispatch_id),
      store.currentDispatchEpoch(d.thread_id),
    ]);
  } catch (err) {
    logger.warn?.('pre-start check failed; leaving the claim to expire', {
      ...run.label,
      error: errorMessage(err),
    });
    return false;
  }
  if (!loaded || loaded.status !== 'Claimed' || loaded.claim_token !== run.claimToken) {
    if (loaded?.status === 'Superseded') deps.emit('superseded', loaded);
    return false;
  }
  if (loaded.dispatch_epoch < epoch) {
    try {
      const superseded = await store.supersedeClaimed(
        d.dispatch_id,
        run.claimToken,
        Date.now(),
        'claimed dispatch superseded before execution start',
      );
      if (superseded) deps.emit('superseded', superseded);
    } catch (err) {
      logger.warn?.('superseding a stale claim failed', { ...run.label, error: errorMessage(err) });
    }
    return false;
  }
  return true;
}

async function runExecutor(
  deps: ExecutionDeps,
  run: ActiveRun,
  started: RunDispatch,
  instanceId: string,
): Promise<Settlement> {
  if (run.aborted) return afterAbort(run, null);
  const ctx: ExecutorContext = new RunContext(run, started, instanceId);
  let outcome: ExecutorOutcome;
  try {
    outcome = await deps.executor(ctx);
  } catch (err) {
    // From here on an abort no longer changes the settlement: the run is settling (aborts that check
    // `executing`, such as a live Cancel, are then refused instead of reported as delivered).
    run.phase = 'settling';
    if (run.aborted) return afterAbort(run, null);
    if (isPermanentError(err)) return { kind: 'fail', error: errorMessage(err) };
    return { kind: 'retry', error: errorMessage(err) };
  }
  run.phase = 'settling';
  const settlement = fromOutcome(outcome);
  return run.aborted ? afterAbort(run, settlement) : settlement;
}

/**
 * A run the Mailbox aborted: cancel/interrupt end it as cancelled, whatever the executor answered (a
 * cancelled run is never retried; an explicit `fail` still dead-letters; a `response` is kept), `stop()`
 * hands it back for another node, a lost lease writes nothing.
 */
function afterAbort(run: ActiveRun, outcome: Settlement | null): Settlement {
  switch (run.abortReason) {
    case 'lease-lost':
      return { kind: 'lost' };
    case 'shutdown':
      return { kind: 'release', error: SHUTDOWN_ERROR };
    default:
      if (outcome?.kind === 'fail') return outcome;
      if (outcome?.kind === 'completed') return { ...CANCELLED, response: outcome.response };
      return CANCELLED;
  }
}

function fromOutcome(outcome: unknown): Settlement {
  if (!outcome || typeof outcome !== 'object' || !('kind' in outcome)) {
    return { kind: 'fail', error: 'executor returned an invalid outcome' };
  }
  const o = outcome as ExecutorOutcome;
  switch (o.kind) {
    case 'completed': {
      const termination = o.termination ?? null;
      return {
        kind: 'completed',
        status: o.status ?? (termination?.type === 'suspended' ? 'waiting' : 'done'),
        termination,
        response: o.response ?? null,
        error: o.error ?? null,
        event: 'completed',
      };
    }
    case 'retry':
      return { kind: 'retry', error: String(o.error) };
    case 'fail':
      return { kind: 'fail', error: String(o.error) };
    default:
      return { kind: 'fail', error: 'executor returned an invalid outcome' };
  }
}

async function settle(
  deps: ExecutionDeps,
  run: ActiveRun,
  started: RunDispatch,
  instanceId: string,
  settlement: Settlement,
): Promise<StartedClaim | null> {
  const { logger } = deps;
  switch (settlement.kind) {
    case 'lost':
      logger.warn?.('run ended after its lease was lost; nothing recorded', run.label);
      return null;
    case 'release':
      await handBack(deps, run, settlement.error);
      return null;
    default:
      break;
  }
  const result: RunDispatchResult = {
    run_id: started.run_id,
    dispatch_instance_id: instanceId,
    ...(settlement.kind === 'completed'
      ? {
          status: settlement.status,
          termination: settlement.termination,
          response: settlement.response,
          error: settlement.error,
        }
      : { status: 'done', termination: { type: 'error', value: settlement.error }, error: settlement.error }),
  };
  if (settlement.kind === 'completed' && isFusedStore(deps.store)) {
    return completeFused(deps, deps.store, run, started, settlement, result);
  }
  await settleSequential(deps, run, started, settlement, result);
  return null;
}

/** `recordRunResult`, then ack / nack / dead-letter by the settlement. */
async function settleSequential(
  deps: ExecutionDeps,
  run: ActiveRun,
  started: RunDispatch,
  settlement: Settlement & { kind: 'completed' | 'retry' | 'fail' },
  result: RunDispatchResult,
): Promise<void> {
  const recordedAt = Date.now();
  const recorded = await recordResult(deps, run, result, recordedAt);
  if (recorded === 'stale') {
    await reconcile(deps, run);
    return;
  }
  const withResult = recorded === 'ok' ? tx.runResultRecorded(started, result, recordedAt) : started;
  switch (settlement.kind) {
    case 'completed':
      await ack(deps, run, withResult, result, recorded === 'ok', settlement.event);
      return;
    case 'retry': {
      const now = Date.now();
      const delay = retryDelayMs(
        started.attempt_count,
        deps.config.defaultRetryDelayMs,
        deps.config.maxRetryDelayMs,
      );
      await nack(deps, run, withResult, now + delay, settlement.error);
      return;
    }
    case 'fail':
      await deadLetter(deps, run, withResult, settlement.error);
      return;
  }
}

/**
 * A completed run on a fused store: result + ack in one call. A `VersionConflict` can only come from the
 * result step (the claim was superseded or lost): reconcile, as the sequential path does. Any other failure
 * leaves it unknown whether the call committed (lost reply): read the record, report an ack that did
 * commit, and otherwise fall back to the sequential writes with their own ack-failure recovery.
 */
async function completeFused(
  deps: ExecutionDeps,
  store: FusedMailboxStore,
  run: ActiveRun,
  started: RunDispatch,
  settlement: Settlement & { kind: 'completed' },
  result: RunDispatchResult,
): Promise<StartedClaim | null> {
  const now = Date.now();
  const next = deps.nextClaim(run.dispatch.thread_id);
  try {
    let chained: StartedClaim | null = null;
    if (next === null) {
      await store.completeAndAck(run.dispatch.dispatch_id, run.claimToken, result, now);
    } else {
      const done = await store.completeAndClaimNext(
        run.dispatch.dispatch_id,
        run.claimToken,
        result,
        now,
        next,
      );
      if (done.claimError) {
        deps.logger.warn?.("claiming the thread's next dispatch after the run failed", {
          ...run.label,
          error: errorMessage(done.claimError),
        });
      }
      chained = startedClaim(done.next, next.dispatchInstanceId);
      if (done.claimError === undefined && done.next === null) run.chainedClaimFoundNothing = true;
    }
    deps.emit(settlement.event, tx.resultAcked(started, result, now));
    return chained;
  } catch (err) {
    deps.logger.warn?.('recording the run result and ack failed', { ...run.label, error: errorMessage(err) });
    if (isStorageError(err, 'VersionConflict')) {
      await reconcile(deps, run);
      return null;
    }
    // The answer was lost: a claim chained onto a committed completion may hold the thread's next
    // dispatch under a token only we know. Release it once the store answers again.
    if (next?.claimToken !== undefined) deps.releaseLostClaim({ threadId: next.threadId }, next.claimToken);
  }
  const loaded = await load(deps, run);
  if (!loaded) return null;
  if (loaded.status === 'Acked') {
    deps.emit(settlement.event, loaded);
    return null;
  }
  if (loaded.status === 'Claimed' && loaded.claim_token === run.claimToken) {
    await settleSequential(deps, run, started, settlement, result);
    return null;
  }
  reportFound(deps, run, loaded);
  return null;
}

async function recordResult(
  deps: ExecutionDeps,
  run: ActiveRun,
  result: RunDispatchResult,
  now: number,
): Promise<'ok' | 'failed' | 'stale'> {
  try {
    await deps.store.recordRunResult(run.dispatch.dispatch_id, run.claimToken, result, now);
    return 'ok';
  } catch (err) {
    deps.logger.warn?.('recording the run result failed', { ...run.label, error: errorMessage(err) });
    return isStorageError(err, 'VersionConflict') ? 'stale' : 'failed';
  }
}

async function ack(
  deps: ExecutionDeps,
  run: ActiveRun,
  withResult: RunDispatch,
  result: RunDispatchResult,
  resultRecorded: boolean,
  event: 'completed' | 'cancelled',
): Promise<void> {
  const { store, logger } = deps;
  const now = Date.now();
  try {
    await store.ack(run.dispatch.dispatch_id, run.claimToken, now);
    deps.emit(event, tx.acked(withResult, now));
    return;
  } catch (err) {
    logger.warn?.('ack failed; checking the dispatch', { ...run.label, error: errorMessage(err) });
  }
  // Ack-failure recovery: the ack may have committed (lost reply), or the claim may still be ours and worth a
  // second try.
  const loaded = await load(deps, run);
  if (!loaded) return;
  if (loaded.status === 'Acked') {
    deps.emit(event, loaded);
    return;
  }
  if (
    resultRecorded &&
    loaded.status === 'Claimed' &&
    loaded.claim_token === run.claimToken &&
    loaded.dispatch_instance_id === result.dispatch_instance_id &&
    loaded.run_status === result.status
  ) {
    const again = Date.now();
    try {
      await store.ack(run.dispatch.dispatch_id, run.claimToken, again);
      deps.emit(event, tx.acked(loaded, again));
    } catch (err) {
      logger.error?.('ack retry failed', { ...run.label, error: errorMessage(err) });
      await reconcile(deps, run);
    }
    return;
  }
  reportFound(deps, run, loaded);
}

async function nack(
  deps: ExecutionDeps,
  run: ActiveRun,
  base: RunDispatch,
  retryAt: number,
  error: string,
): Promise<void> {
  const now = Date.now();
  try {
    await deps.store.nack(run.dispatch.dispatch_id, run.claimToken, retryAt, error, now);
  } catch (err) {
    deps.logger.warn?.('nack failed', { ...run.label, error: errorMessage(err) });
    await reconcile(deps, run);
    return;
  }
  const after = tx.nacked(base, retryAt, error, now);
  if (after.status === 'Queued') {
    deps.emit('retried', after, error, retryAt);
    deps.scheduleWake(after.thread_id, retryAt);
  } else {
    deps.emit('deadLettered', after, error);
  }
}

async function deadLetter(
  deps: ExecutionDeps,
  run: ActiveRun,
  base: RunDispatch,
  error: string,
): Promise<void> {
  const now = Date.now();
  try {
    await deps.store.deadLetter(run.dispatch.dispatch_id, run.claimToken, error, now);
    deps.emit('deadLettered', tx.deadLettered(base, error, now), error);
  } catch (err) {
    deps.logger.warn?.('dead-letter failed', { ...run.label, error: errorMessage(err) });
    await reconcile(deps, run);
  }
}

/** After a failed write: read the record and report what happened to it (typically a lazy supersede). */
async function reconcile(deps: ExecutionDeps, run: ActiveRun): Promise<void> {
  const loaded = await load(deps, run);
  if (loaded) reportFound(deps, run, loaded);
}

async function load(deps: ExecutionDeps, run: ActiveRun): Promise<RunDispatch | null> {
  try {
    const loaded = await deps.store.loadDispatch(run.dispatch.dispatch_id);
    if (!loaded) deps.logger.warn?.('dispatch vanished', run.label);
    return loaded;
  } catch (err) {
    deps.logger.error?.('loading the dispatch failed', { ...run.label, error: errorMessage(err) });
    return null;
  }
}

function reportFound(deps: ExecutionDeps, run: ActiveRun, loaded: RunDispatch): void {
  if (loaded.status === 'Superseded') {
    deps.emit('superseded', loaded);
    return;
  }
  deps.logger.warn?.('dispatch left in an unexpected state', { ...run.label, status: loaded.status });
}

/**
 * Give a claim back for immediate retry elsewhere (`stop()`, a claim made while stopping). A hand-back is
 * not a failure: with a `HandBackMailboxStore` the dispatch returns to Queued with its attempt count
 * unchanged (event `handedBack`, never `retried`); other stores only offer a nack with retry_at = now,
 * which counts an attempt. A claim whose lease was lost is not ours to give back.
 */
export async function handBack(deps: ExecutionDeps, run: ActiveRun, reason: string): Promise<void> {
  run.stopRenewing();
  if (run.leaseLost) return;
  const { store } = deps;
  if (!isHandBackStore(store)) {
    await nack(deps, run, run.dispatch, Date.now(), reason);
    return;
  }
  let released: RunDispatch[];
  try {
    released = await store.releaseClaim({ dispatchId: run.dispatch.dispatch_id }, run.claimToken, Date.now());
  } catch (err) {
    deps.logger.warn?.('handing the dispatch back failed', { ...run.label, error: errorMessage(err) });
    // Lost reply: the claim may be back already, or still ours; release it once the store answers.
    deps.releaseLostClaim({ dispatchId: run.dispatch.dispatch_id }, run.claimToken);
    return;
  }
  if (released.length === 0) {
    await reconcile(deps, run);
    return;
  }
  for (const d of released) {
    if (d.status === 'Queued') deps.emit('handedBack', d, reason);
    else reportFound(deps, run, d);
  }
}

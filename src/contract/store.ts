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
} from './types.js';

/**
 * The mailbox store: same methods, order and meaning as the Rust `MailboxStore` trait of upstream Awaken.
 * Every timestamp is Unix milliseconds supplied by the caller; the store never reads the clock for state
 * transitions. Invalid arguments throw `StorageError` kind `Validation` before anything is touched.
 */
export interface MailboxStore {
  enqueue(dispatch: RunDispatchInput): Promise<void>;
  claim(
    threadId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
    limit: number,
  ): Promise<RunDispatch[]>;
  claimDispatch(
    dispatchId: string,
    consumerId: string,
    leaseMs: number,
    now: number,
  ): Promise<RunDispatch | null>;
  ack(dispatchId: string, claimToken: string, now: number): Promise<void>;
  recordDispatchStart(
    dispatchId: string,
    claimToken: string,
    dispatchInstanceId: string,
    now: number,
  ): Promise<void>;
  recordRunResult(
    dispatchId: string,
    claimToken: string,
    result: RunDispatchResult,
    now: number,
  ): Promise<void>;
  nack(dispatchId: string, claimToken: string, retryAt: number, error: string, now: number): Promise<void>;
  deadLetter(dispatchId: string, claimToken: string, error: string, now: number): Promise<void>;
  cancel(dispatchId: string, now: number): Promise<RunDispatch | null>;
  extendLease(dispatchId: string, claimToken: string, extensionMs: number, now: number): Promise<boolean>;
  interrupt(threadId: string, now: number): Promise<MailboxInterrupt>;
  interruptDetailed(threadId: string, now: number): Promise<MailboxInterruptDetails>;
  currentDispatchEpoch(threadId: string): Promise<number>;
  supersedeClaimed(
    dispatchId: string,
    claimToken: string,
    now: number,
    reason: string,
  ): Promise<RunDispatch | null>;
  loadDispatch(dispatchId: string): Promise<RunDispatch | null>;
  listDispatches(
    threadId: string,
    statusFilter: readonly RunDispatchStatus[] | null,
    limit: number,
    offset: number,
  ): Promise<RunDispatch[]>;
  countDispatchesByStatus(status: RunDispatchStatus): Promise<number>;
  listTerminalDispatches(limit: number, offset: number): Promise<RunDispatch[]>;
  reclaimExpiredLeases(now: number, limit: number): Promise<RunDispatch[]>;
  purgeTerminal(olderThan: number): Promise<number>;
  queuedThreadIds(): Promise<string[]>;
  supportsDispatchSignals(): boolean;
  pullDispatchSignals(max: number, expiresMs: number): Promise<DispatchSignalEntry[]>;
  deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  openLiveChannel(threadId: string): Promise<LiveRunCommandStream>;
  openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream>;
  /** Release connections, timers and subscriptions. Idempotent. */
  close(): Promise<void>;
}

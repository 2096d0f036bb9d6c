import type {
  LiveRunCommand,
  LiveRunCommandEntry,
  Message,
  RunDispatch,
  RunStatus,
  TerminationReason,
  ToolCallResume,
} from '../contract/types.js';
import type { MailboxStore } from '../contract/store.js';
import type { RunAbortedError } from './errors.js';

/** What the executor gets for one claimed dispatch. */
export interface ExecutorContext {
  /** The claimed record (status Claimed, our claim token). */
  readonly dispatch: RunDispatch;
  /** The runtime attempt id recorded by `recordDispatchStart` (UUID v7). */
  readonly instanceId: string;
  /** 1 for the first execution, then attempt_count + 1. */
  readonly attempt: number;
  /**
   * Aborted on cancel, interrupt, a lost lease, or `stop()` past its grace period. `signal.reason` is a
   * `RunAbortedError` whose `reason` says which (`abortReasonOf(signal)`), the same whether the cause came
   * from this node or another one. After an abort the outcome matters less: cancel/interrupt end the run as
   * cancelled (never retried, even when the executor returned its normal answer), shutdown hands it to
   * another node without counting an attempt, a lost lease writes nothing. The lease is lost when it can no
   * longer be proven: renewals kept failing until a deadline before the lease ends.
   */
  readonly signal: AbortSignal;
  /** Whether the run was aborted (as `signal.aborted`, without making the signal). */
  readonly aborted: boolean;
  /**
   * Call `listener` once when the run is aborted, with the `RunAbortedError` that `signal.reason` holds (at
   * once when it already was); returns the function that removes it. The same aborts as `signal`, for
   * executors that need no AbortSignal object (they do not hand it to `fetch` or an SDK): on Node 20 the
   * AbortController behind `signal` costs several microseconds per run to create, and is only made when an
   * executor reads `signal`. A listener that throws is logged; it does not stop the abort.
   */
  onAbort(listener: (reason: RunAbortedError) => void): () => void;
  /**
   * Live commands addressed to this run (Messages, Decision, PendingBoundaryWake). The executor calls
   * `receipt.ack()` once it accepted one; an un-acked command reads as not delivered to the sender.
   * Commands are only offered once the executor started reading (asked for an iterator): before that, and
   * for executors that never read, `sendMessages` queues messages durably at once. Cancel is handled by the
   * Mailbox (it aborts `signal`) and never appears here.
   */
  readonly commands: AsyncIterable<LiveRunCommandEntry>;
  /** Report that the run waits for a human (tool-call suspension): the lease is renewed with the long lease. */
  setWaiting(waiting: boolean): void;
}

/** What a run ended with. A thrown error is treated as `{kind: 'retry'}` unless it is a `PermanentError`. */
export type ExecutorOutcome =
  | {
      kind: 'completed';
      status?: RunStatus;
      termination?: TerminationReason | null;
      response?: string | null;
      error?: string | null;
    }
  /** Transient failure: nack with backoff (dead-letters once max_attempts is reached). */
  | { kind: 'retry'; error: string }
  /** Permanent failure: dead-letter now. */
  | { kind: 'fail'; error: string };

export type Executor = (ctx: ExecutorContext) => Promise<ExecutorOutcome>;

export interface MailboxConfig {
  leaseMs: number;
  suspendedLeaseMs: number;
  leaseRenewalIntervalMs: number;
  sweepIntervalMs: number;
  gcIntervalMs: number;
  gcTtlMs: number;
  defaultMaxAttempts: number;
  defaultRetryDelayMs: number;
  maxRetryDelayMs: number;
  signalBatchSize: number;
  signalFetchExpiresMs: number;
  signalNackBaseDelayMs: number;
  signalNackMaxDelayMs: number;
  /**
   * The most runs executing at once on this Mailbox, across all threads (default 32). Work beyond it waits:
   * its signals are left for other nodes or retried later, queued work is picked up when a run ends. Never
   * dropped. It also bounds the signal handlers in flight.
   */
  concurrency: number;
  /** @deprecated Alias of `concurrency` (older name); give one or the other. */
  maxConcurrentHandlers: number;
  /** How long foreground `submit` waits for an interrupted active run to release its thread. */
  remoteCancelWaitMs: number;
  remoteCancelPollMs: number;
  /** How long `stop()` lets running executors finish before aborting them and handing their dispatches back. */
  stopGraceMs: number;
  /** Without dispatch signals (memory store): how often idle threads are polled for due work. */
  idlePollIntervalMs: number;
  /**
   * With live commands over NATS: how long a thread's live subscription is kept once this node has nothing
   * of the thread to run (its last run ended, or a claim of the thread found nothing): default 2 000 ms, 0
   * drops it at once. A thread whose next dispatch comes within it runs without a new SUB and its round trip.
   * A lingering subscription answers no command; so while one lingers anywhere, a command to a run of that
   * thread that nobody runs any more (its node crashed holding the claim, say) is answered `NoSubscriber`
   * after the store's live request timeout (`liveRequestTimeoutMs`, 5 s) instead of at once: `cancel`,
   * `interrupt`, `sendMessages` and `sendDecision` aimed at such a claim take that long to fall back. At most
   * 4 096 subscriptions linger per Mailbox (the one idle longest goes first); `stop()` drops them.
   */
  liveSubscriptionLingerMs: number;
  /**
   * For runs no live command reaches (every run on a store without live commands, such as the Redis store
   * without NATS; a run whose live channel failed to open): how often a Mailbox reads the epochs and cancel
   * requests of their threads, so that an interrupt or a `cancel` made on another node aborts the run (reason
   * `interrupt` or `cancel`) within about this long instead of at the run's next lease renewal: default
   * 250 ms, 0 = only at lease renewal. One read per such run per interval (at most 256 per interval; more take
   * turns), only while one runs.
   */
  epochPollIntervalMs: number;
}

export interface SubmitRequest {
  threadId: string;
  /** Defaults to a UUID v7. */
  runId?: string;
  /** Defaults to a UUID v7. */
  dispatchId?: string;
  priority?: number;
  dedupeKey?: string;
  maxAttempts?: number;
}

export interface SubmitResult {
  dispatchId: string;
  runId: string;
  /** `Running`: claimed by this node and executing; `Queued`: waiting for its thread. */
  status: 'Running' | 'Queued';
}

export interface MailboxEvents {
  claimed: [dispatch: RunDispatch];
  started: [dispatch: RunDispatch, instanceId: string];
  completed: [dispatch: RunDispatch];
  retried: [dispatch: RunDispatch, error: string, retryAt: number];
  deadLettered: [dispatch: RunDispatch, error: string];
  superseded: [dispatch: RunDispatch];
  /**
   * A Queued dispatch cancelled, or a running run that cancel / interrupt ended (its record is Acked with
   * termination `cancelled`).
   */
  cancelled: [dispatch: RunDispatch];
  /**
   * A claim given back without counting an attempt: a run `stop()` cut short, or a claim made while
   * stopping. The dispatch is Queued again for any node.
   */
  handedBack: [dispatch: RunDispatch, reason: string];
  /** `sendMessages` found no live run to take the messages and queued a durable dispatch for them. */
  messagesQueued: [delivery: QueuedMessages];
}

/**
 * Messages `sendMessages` could not deliver live. The Mailbox queues a durable dispatch for them with
 * deterministic ids, as the Awaken server makes them: `dispatchId` = the first message's id (a UUID v7 is
 * assigned to messages without one), `runId` = `durable-msg-<dispatchId>`. The runtime persists `messages`
 * (through `MailboxOptions.messageSink`) and its executor reads them back when that run starts.
 */
export interface QueuedMessages {
  threadId: string;
  runId: string;
  dispatchId: string;
  messages: Message[];
}

/** Persist messages of a durable fallback; awaited before the dispatch is enqueued (a throw aborts the enqueue). */
export type MessageSink = (delivery: QueuedMessages) => Promise<void> | void;

import type { Logger } from '../util/logger.js';
export type MailboxLogger = Logger;

export interface MailboxOptions {
  store: MailboxStore;
  executor: Executor;
  /** This node's consumer id (claimed_by). Defaults to a UUID v7. */
  consumerId?: string;
  config?: Partial<MailboxConfig>;
  logger?: MailboxLogger;
  /** Where `sendMessages` hands messages it queues durably (see `QueuedMessages`). */
  messageSink?: MessageSink;
  /**
   * `'full'` (default): load the dispatch and the thread epoch before starting a run, as awaken-server does.
   * `'none'`: skip those two reads; `recordDispatchStart` still rejects (and supersedes) a stale or lost claim,
   * so the only difference is the superseded record's `last_error` text. For throughput-sensitive runtimes.
   * Ignored with a `FusedMailboxStore`: there the claim and the start are one atomic step.
   */
  preStartCheck?: 'full' | 'none';
}

/** A run `stop()` left behind (see `MailboxStopReport`). */
export interface LeftBehindRun {
  dispatchId: string;
  threadId: string;
  runId: string;
}

/** What `stop()` did with the runs it found. */
export interface MailboxStopReport {
  /** Runs that ended on their own within the grace period. */
  finished: number;
  /** Runs (and claims made while stopping) handed back to the queue, attempt count unchanged. */
  handedBack: number;
  /**
   * Runs whose executor ignored the abort and still runs in this process. Their claims are kept, and their
   * leases renewed, until the executor returns; then they are handed back. The thread is never given to
   * another node while its executor runs here, so keep the store open until they are done (closing it ends
   * the renewals, and the lease expires).
   */
  stillRunning: LeftBehindRun[];
}

/** Public surface of the Mailbox service. */
export interface MailboxApi {
  start(): Promise<void>;
  /**
   * Foreground: interrupt the thread, wait for its active run to release, enqueue, claim inline, run. When
   * this Mailbox already runs `config.concurrency` runs, the dispatch is queued instead (status `Queued`).
   */
  submit(req: SubmitRequest): Promise<SubmitResult>;
  /** Background: enqueue, and run now if the thread is idle on this node. */
  submitBackground(req: SubmitRequest): Promise<SubmitResult>;
  interrupt(
    threadId: string,
  ): Promise<{ newDispatchEpoch: number; supersededCount: number; activeCancelled: boolean }>;
  /**
   * Cancel by dispatch, thread or run id, whichever node runs it: queued → Cancelled; running here → aborted;
   * claimed elsewhere → live Cancel to its exact run. A cancelled running run emits `cancelled`.
   */
  cancel(id: string): Promise<boolean>;
  sendDecision(dispatchId: string, toolCallId: string, resume: ToolCallResume): Promise<boolean>;
  /**
   * Live to the thread's running run first (when its executor reads `ctx.commands`); when nobody accepts, a
   * durable dispatch. Answers promptly either way.
   */
  sendMessages(threadId: string, messages: Message[], opts?: { runId?: string }): Promise<'live' | 'queued'>;
  stop(): Promise<MailboxStopReport>;
}

export type { LiveRunCommand };

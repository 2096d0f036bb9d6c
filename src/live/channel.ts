import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../contract/types.js';

/**
 * The live (ephemeral steering) half of a store: a command goes to the exact run it targets and is
 * `Delivered` only when that run's consumer acked it; nothing is persisted or retried.
 */
export interface LiveChannel {
  deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  openLiveChannel(threadId: string): Promise<LiveRunCommandStream>;
  openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream>;
  close(): Promise<void>;
}

/**
 * The runs of one thread that this node executes, one after another, served by ONE subscription to every run
 * subject of the thread instead of one subscription (SUB, PING/PONG, UNSUB) per run. A node holds it while
 * it runs the thread; at most one run of a thread executes at a time anywhere, so commands to the thread's
 * other runs reaching it are answered "no subscriber" while its own run holds the thread.
 */
export interface ThreadRunsLive {
  /**
   * The live stream of one run of the thread, registered at once (no round trip: the subscription is in
   * place). Null when this subscription cannot serve the target (its subject had to be digested differently,
   * or a stream for it is already open): open one of its own then.
   */
  openRun(target: LiveRunTarget): LiveRunCommandStream | null;
  /** Whether it is closed (by `close`, or because its connection or the server ended the subscription). */
  readonly closed: boolean;
  /** Unsubscribe; open run streams end. Idempotent. */
  close(): Promise<void>;
}

/** A live channel that can serve a thread's runs on one subscription. */
export interface ThreadRunsChannel {
  /**
   * Subscribe to every run subject of `threadId`. `holdsThread` answers whether this node still holds the
   * thread's claim right now (its run executes, the lease is not lost): only then are commands to other runs
   * of the thread answered "no subscriber"; otherwise they are left unanswered for another node's run.
   */
  openThreadRuns(threadId: string, holdsThread: () => boolean): Promise<ThreadRunsLive>;
}

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

import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../contract/types.js';

/** The live (ephemeral steering) half of a store: exact-target request/reply (contract.md §7). */
export interface LiveChannel {
  deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome>;
  openLiveChannel(threadId: string): Promise<LiveRunCommandStream>;
  openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream>;
  close(): Promise<void>;
}

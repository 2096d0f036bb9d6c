/**
 * The live half of a store configured without NATS (what the Rust trait's default methods do): arguments are
 * still validated, deliveries answer `NoSubscriber`, channels are empty streams that end at once.
 */
import * as args from '../contract/args.js';
import type {
  LiveDeliveryOutcome,
  LiveRunCommand,
  LiveRunCommandEntry,
  LiveRunCommandStream,
  LiveRunTarget,
} from '../contract/types.js';
import type { LiveChannel } from '../live/channel.js';

function emptyStream(): LiveRunCommandStream {
  return {
    [Symbol.asyncIterator](): AsyncIterator<LiveRunCommandEntry> {
      return { next: () => Promise.resolve({ done: true, value: undefined }) };
    },
    close: () => Promise.resolve(),
  };
}

export class NoLiveChannel implements LiveChannel {
  async deliverLive(threadId: string, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    args.id('thread_id', threadId);
    args.liveCommand(command);
    return 'NoSubscriber';
  }

  async deliverLiveTo(target: LiveRunTarget, command: LiveRunCommand): Promise<LiveDeliveryOutcome> {
    args.liveTarget(target);
    args.liveCommand(command);
    return 'NoSubscriber';
  }

  async openLiveChannel(threadId: string): Promise<LiveRunCommandStream> {
    args.id('thread_id', threadId);
    return emptyStream();
  }

  async openLiveChannelFor(target: LiveRunTarget): Promise<LiveRunCommandStream> {
    args.liveTarget(target);
    return emptyStream();
  }

  async close(): Promise<void> {}
}

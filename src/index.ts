/**
 * awaken-mailbox: the durable run mailbox of Awaken-style agent runtimes.
 * Everything users and tests import comes from here.
 */
export * from './contract/index.js';
export { MemoryMailboxStore } from './memory/index.js';
export type { MemoryMailboxStoreOptions } from './memory/index.js';
export { createMailboxStore, RedisMailboxStore, redisKeys } from './redis/index.js';
export type { CreateMailboxStoreOptions, SignalsMode, RedisKeys } from './redis/index.js';
export {
  Mailbox,
  PermanentError,
  RunAbortedError,
  MailboxStoppedError,
  DEFAULT_MAILBOX_CONFIG,
  abortReasonOf,
} from './mailbox/index.js';
export type * from './mailbox/types.js';
export type { AbortReason } from './mailbox/index.js';
export { NatsLiveChannel, liveSubjectPrefix } from './live/nats-live.js';
export type { LiveChannel } from './live/channel.js';
export type { SignalTransport, SignalRef } from './signals/transport.js';
export type { Logger } from './util/logger.js';
export { ConfigError } from './util/config-error.js';
export { consoleLogger, silentLogger } from './util/logger.js';
export { DEAD_LETTER_STORE, isDeadLetterStore } from './contract/dead-letters.js';
export type { DeadLetterMailboxStore, RequeueDeadLetterOptions } from './contract/dead-letters.js';
export { CANCEL_REQUEST_STORE, isCancelRequestStore } from './contract/cancel-requests.js';
export type { CancelRequestMailboxStore, RunControl } from './contract/cancel-requests.js';
export { METRIC, METER_NAME, instrumentMailbox, instrumentStore } from './metrics/index.js';
export type { IndexHeads, IndexHeadsProbe, MetricsOptions, StoreMetricsOptions } from './metrics/index.js';
export {
  LIFECYCLE_EVENT_TYPES,
  LifecycleFeed,
  attachLifecycleFeed,
  feedSubject,
  openLifecycleFeed,
} from './feed/index.js';
export type {
  FeedStart,
  FeedSubscription,
  FeedTransport,
  LifecycleEvent,
  LifecycleEventType,
  LifecycleFeedEvents,
  LifecycleFeedPublisher,
  LifecycleFeedPublisherOptions,
  OpenLifecycleFeedOptions,
  WaitUntilFinishedOptions,
} from './feed/index.js';

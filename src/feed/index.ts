export { attachLifecycleFeed } from './publisher.js';
export type { FeedMailbox, LifecycleFeedPublisher, LifecycleFeedPublisherOptions } from './publisher.js';
export { LifecycleFeed, openLifecycleFeed } from './consumer.js';
export type { LifecycleFeedEvents, OpenLifecycleFeedOptions, WaitUntilFinishedOptions } from './consumer.js';
export { feedSubject, DEFAULT_STREAM_MAX_LEN } from './transport.js';
export type { FeedSink, FeedSubscription, FeedTransport } from './transport.js';
export { decodeBatch, encodeBatch, FEED_WIRE_VERSION } from './wire.js';
export { LIFECYCLE_EVENT_TYPES, MAX_EVENT_TEXT } from './types.js';
export type { FeedStart, LifecycleEvent, LifecycleEventType } from './types.js';

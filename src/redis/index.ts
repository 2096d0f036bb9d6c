export { createMailboxStore } from './create-store.js';
export { RedisMailboxStore, PURGE_BATCH } from './store.js';
export type { RedisMailboxStoreParts, StoreSignalTransport, Stoppable } from './store.js';
export {
  redisKeys,
  orderKey,
  terminalKey,
  validateNamespace,
  SIGNAL_GROUP,
  DEFAULT_HASH_TAG,
} from './keys.js';
export type { RedisKeys } from './keys.js';
export {
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_REPUBLISH_AFTER_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
} from './options.js';
export type { CreateMailboxStoreOptions, SignalsMode } from './options.js';

export { MemoryMailboxStore } from './store.js';
export type { MemoryStoreStats } from './store.js';
export type { MemoryMailboxStoreOptions } from './options.js';
export {
  DEFAULT_REPUBLISH_AFTER_MS,
  DEFAULT_SWEEP_BATCH_SIZE,
  DEFAULT_SWEEP_INTERVAL_MS,
} from './options.js';
export { MemorySignalQueue, DEFAULT_SIGNAL_ACK_WAIT_MS } from './signals.js';
export type { MemorySignalQueueOptions } from './signals.js';
export { MemoryLiveChannel, DEFAULT_LIVE_ACK_TIMEOUT_MS, DEFAULT_LIVE_BUFFER_SIZE } from './live.js';
export type { MemoryLiveChannelOptions } from './live.js';

export { Mailbox } from './mailbox.js';
export { DEFAULT_MAILBOX_CONFIG, INLINE_CLAIM_GUARD_MS, resolveMailboxConfig } from './config.js';
export { MailboxStoppedError, PermanentError, RunAbortedError, abortReasonOf } from './errors.js';
export type { AbortReason } from './errors.js';
export { retryDelayMs, signalNackDelayMs } from './backoff.js';
export type * from './types.js';

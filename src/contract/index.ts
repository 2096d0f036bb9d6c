export * from './types.js';
export * from './errors.js';
export * from './store.js';
export * from './codec.js';
export { queuedDispatch, DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY } from './helpers.js';
export { validateForEnqueue, validateForPersist } from './validate.js';
export * as args from './args.js';
export * from './fused.js';

/**
 * Mailbox service configuration: the Awaken server's defaults, each overridable, validated with zod.
 * Bad input → `ConfigError` (kind `Validation`) naming the field (`config.<field>: ...`).
 */
import { z } from 'zod';
import { MAX_BATCH, MAX_PULL_EXPIRES_MS } from '../contract/args.js';
import { configError, configErrorFromZod } from '../util/config-error.js';
import type { MailboxConfig } from './types.js';

/** Longest delay a Node timer accepts (2^31 − 1 ms); every interval and wait must fit. */
export const MAX_TIMER_MS = 2_147_483_647;

/** awaken-server's INLINE_CLAIM_GUARD_MS: keeps thread scanners away from a dispatch about to be claimed by id. */
export const INLINE_CLAIM_GUARD_MS = 60_000;
/** Reclaim / recovery batch (the Awaken server's). */
export const RECLAIM_BATCH = 100;
/** Sleep after a failed signal pull (the Awaken server's). */
export const PULL_ERROR_SLEEP_MS = 250;
/**
 * A signal whose claim (or re-read) failed is redelivered at once the first time, as upstream does; a
 * redelivered one that fails again waits this long first. Without it a store that keeps failing made every
 * such signal a hot loop: with the in-memory transport a loop of promise callbacks that never let a timer run.
 */
export const FAILED_SIGNAL_RETRY_MS = 250;

export const DEFAULT_MAILBOX_CONFIG: Readonly<MailboxConfig> = Object.freeze({
  leaseMs: 30_000,
  suspendedLeaseMs: 600_000,
  leaseRenewalIntervalMs: 10_000,
  sweepIntervalMs: 30_000,
  gcIntervalMs: 60_000,
  gcTtlMs: 86_400_000,
  defaultMaxAttempts: 5,
  defaultRetryDelayMs: 250,
  maxRetryDelayMs: 30_000,
  signalBatchSize: 32,
  signalFetchExpiresMs: 500,
  signalNackBaseDelayMs: 500,
  signalNackMaxDelayMs: 30_000,
  concurrency: 32,
  maxConcurrentHandlers: 32,
  remoteCancelWaitMs: 5_000,
  remoteCancelPollMs: 25,
  stopGraceMs: 10_000,
  idlePollIntervalMs: 1_000,
  liveSubscriptionLingerMs: 2_000,
  epochPollIntervalMs: 250,
});

const ms = z.number().int().positive().max(MAX_TIMER_MS);
const count = z.number().int().positive().max(MAX_BATCH);

const overridesSchema = z
  .strictObject({
    leaseMs: ms,
    suspendedLeaseMs: ms,
    leaseRenewalIntervalMs: ms,
    sweepIntervalMs: ms,
    gcIntervalMs: ms,
    gcTtlMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    defaultMaxAttempts: z.number().int().positive().max(0xffff_ffff),
    defaultRetryDelayMs: ms,
    maxRetryDelayMs: ms,
    signalBatchSize: count,
    signalFetchExpiresMs: z.number().int().positive().max(MAX_PULL_EXPIRES_MS),
    signalNackBaseDelayMs: ms,
    signalNackMaxDelayMs: ms,
    concurrency: count,
    maxConcurrentHandlers: count,
    remoteCancelWaitMs: ms,
    remoteCancelPollMs: ms,
    stopGraceMs: ms,
    idlePollIntervalMs: ms,
    liveSubscriptionLingerMs: z.number().int().min(0).max(MAX_TIMER_MS),
    epochPollIntervalMs: z.number().int().min(0).max(MAX_TIMER_MS),
  })
  .partial();

/**
 * Merge `overrides` over the defaults and check the combination. When only `leaseMs` is overridden, the renewal
 * interval defaults to a third of the lease (at most 10 s), so a short test lease still gets renewed in time.
 * `maxConcurrentHandlers` is the older name of `concurrency`: either sets both.
 */
export function resolveMailboxConfig(overrides: unknown = {}): MailboxConfig {
  const parsed = overridesSchema.safeParse(overrides ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'config', Object.keys(overridesSchema.shape));
  const given = parsed.data;
  const leaseMs = given.leaseMs ?? DEFAULT_MAILBOX_CONFIG.leaseMs;
  if (
    given.concurrency !== undefined &&
    given.maxConcurrentHandlers !== undefined &&
    given.concurrency !== given.maxConcurrentHandlers
  ) {
    throw configError(
      'config.maxConcurrentHandlers: a deprecated alias of config.concurrency; give only config.concurrency',
    );
  }
  const concurrency = given.concurrency ?? given.maxConcurrentHandlers ?? DEFAULT_MAILBOX_CONFIG.concurrency;
  const config: MailboxConfig = {
    ...DEFAULT_MAILBOX_CONFIG,
    ...stripUndefined(given),
    concurrency,
    maxConcurrentHandlers: concurrency,
    leaseRenewalIntervalMs:
      given.leaseRenewalIntervalMs ??
      Math.max(1, Math.min(DEFAULT_MAILBOX_CONFIG.leaseRenewalIntervalMs, Math.floor(leaseMs / 3))),
  };
  const fail = (msg: string): never => {
    throw configError(msg);
  };
  if (config.leaseRenewalIntervalMs >= config.leaseMs) {
    fail('config.leaseRenewalIntervalMs: must be shorter than config.leaseMs');
  }
  if (config.leaseRenewalIntervalMs >= config.suspendedLeaseMs) {
    fail('config.leaseRenewalIntervalMs: must be shorter than config.suspendedLeaseMs');
  }
  if (config.defaultRetryDelayMs > config.maxRetryDelayMs) {
    fail('config.defaultRetryDelayMs: must not exceed config.maxRetryDelayMs');
  }
  if (config.signalNackBaseDelayMs > config.signalNackMaxDelayMs) {
    fail('config.signalNackBaseDelayMs: must not exceed config.signalNackMaxDelayMs');
  }
  return Object.freeze(config);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

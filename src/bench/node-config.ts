/** What a node process is told to be: passed as one JSON argument and validated on arrival. */
import { z } from 'zod';
import type { MailboxConfig } from '../mailbox/types.js';

const positiveInt = z.number().int().positive();

const mailboxConfigSchema = z
  .object({
    leaseMs: positiveInt,
    suspendedLeaseMs: positiveInt,
    leaseRenewalIntervalMs: positiveInt,
    sweepIntervalMs: positiveInt,
    gcIntervalMs: positiveInt,
    gcTtlMs: positiveInt,
    defaultMaxAttempts: positiveInt,
    defaultRetryDelayMs: positiveInt,
    maxRetryDelayMs: positiveInt,
    signalBatchSize: positiveInt,
    signalFetchExpiresMs: positiveInt,
    signalNackBaseDelayMs: positiveInt,
    signalNackMaxDelayMs: positiveInt,
    concurrency: positiveInt,
    maxConcurrentHandlers: positiveInt,
    remoteCancelWaitMs: positiveInt,
    remoteCancelPollMs: positiveInt,
    stopGraceMs: positiveInt,
    idlePollIntervalMs: positiveInt,
    liveSubscriptionLingerMs: z.number().int().min(0),
    epochPollIntervalMs: z.number().int().min(0),
  })
  .partial();

const signals = z.enum(['jetstream', 'redis-streams', 'none']);

export const nodeConfigSchema = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('mailbox'),
    node: z.string().min(1),
    redis: z.string().min(1),
    nats: z.string().min(1).nullable(),
    signals,
    namespace: z.string().regex(/^[A-Za-z0-9_-]+$/),
    /** Signal sweeper settings for the node's store (empty: the store's defaults). */
    store: z.object({
      sweepIntervalMs: positiveInt.optional(),
      republishAfterMs: positiveInt.optional(),
      partitions: positiveInt.optional(),
      redisCluster: z.array(z.string().min(1)).min(1).optional(),
      durability: z.enum(['async', 'replicated']).optional(),
      jetstreamReplicas: z.union([z.literal(1), z.literal(3)]).optional(),
      quietClaimedThreads: z.boolean().optional(),
    }),
    runMs: z.string().min(1),
    failRate: z.number().min(0).max(1),
    liveRate: z.number().min(0).max(1),
    interruptRate: z.number().min(0).max(1),
    mailbox: mailboxConfigSchema,
  }),
  z.object({
    mode: z.literal('bullmq'),
    node: z.string().min(1),
    redis: z.string().min(1),
    queue: z.string().min(1),
    prefix: z.string().min(1),
    concurrency: positiveInt,
    runMs: z.string().min(1),
    failRate: z.number().min(0).max(1),
  }),
  z.object({
    mode: z.literal('groupmq'),
    node: z.string().min(1),
    redis: z.string().min(1),
    namespace: z.string().min(1),
    concurrency: positiveInt,
    runMs: z.string().min(1),
    failRate: z.number().min(0).max(1),
    maxAttempts: positiveInt,
    retryDelayMs: positiveInt,
  }),
]);

export type NodeConfig = z.infer<typeof nodeConfigSchema>;
export type MailboxNodeConfig = Extract<NodeConfig, { mode: 'mailbox' }>;
export type BullmqNodeConfig = Extract<NodeConfig, { mode: 'bullmq' }>;
export type GroupmqNodeConfig = Extract<NodeConfig, { mode: 'groupmq' }>;

// The schema must accept every MailboxConfig key: a compile-time check that the two agree.
type Assert<T extends true> = T;
export type _MailboxKeysAgree = Assert<
  keyof MailboxConfig extends keyof z.infer<typeof mailboxConfigSchema>
    ? keyof z.infer<typeof mailboxConfigSchema> extends keyof MailboxConfig
      ? true
      : false
    : false
>;

export function parseNodeConfig(json: string): NodeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`node config is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = nodeConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`invalid node config: ${parsed.error.message}`);
  return parsed.data;
}

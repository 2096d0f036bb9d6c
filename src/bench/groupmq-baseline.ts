/**
 * The GroupMQ peer of `--baseline`: thread = group (GroupMQ runs one job of a group at a time, the closest
 * peer to the Mailbox's one run per thread), one GroupMQ queue in the run's own namespace (its keys deleted
 * afterwards), GroupMQ workers in the node processes (groupmq-worker.ts) with the same attempts and retry delay.
 */
import { Redis } from 'ioredis';
import type { BaselineJobData } from './bullmq-worker.js';
import { loadGroupmq } from './groupmq-worker.js';
import type { BaselineParams, PeerDriver, PeerQueue } from './peer-baseline.js';

const DELETE_BATCH = 500;

/** Delete every key matching `pattern` (SCAN + UNLINK: never KEYS on a shared server). */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', DELETE_BATCH);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

export const groupmqDriver: PeerDriver = {
  name: 'groupmq',
  title: 'GroupMQ',
  async openQueue(p: BaselineParams, prefix: string): Promise<PeerQueue> {
    const { Queue } = await loadGroupmq();
    const redis = new Redis(p.redis, { maxRetriesPerRequest: null });
    const queue = new Queue<BaselineJobData>({ redis, namespace: prefix, maxAttempts: p.maxAttempts });
    return {
      ready: async () => {
        await redis.ping();
      },
      add: async (job) => {
        await queue.add({
          groupId: job.thread_id,
          data: { thread_id: job.thread_id, run_id: job.run_id },
          jobId: job.dispatch_id,
          maxAttempts: p.maxAttempts,
        });
      },
      destroy: async () => {
        try {
          await deleteKeys(redis, `${queue.namespace}:*`);
        } finally {
          await queue.close(); // also quits `redis`
        }
      },
    };
  },
  workerConfig: (p, node, prefix, concurrency) => ({
    mode: 'groupmq',
    node,
    redis: p.redis,
    namespace: prefix,
    concurrency,
    runMs: p.runMsSpec,
    failRate: p.failRate,
    maxAttempts: p.maxAttempts,
    retryDelayMs: p.retryDelayMs,
  }),
};

/**
 * The BullMQ peer of `--baseline`: one BullMQ queue in the run's own prefix (obliterated afterwards), jobs with
 * the same attempts and exponential retry delay as the Mailbox run's dispatches, BullMQ workers in the node
 * processes (bullmq-worker.ts). BullMQ has no per-thread exclusivity: the thread id only rides in the payload.
 */
import { loadBullmq } from './bullmq-worker.js';
import type { BaselineJobData } from './bullmq-worker.js';
import type { BaselineParams, PeerDriver, PeerQueue } from './peer-baseline.js';

const QUEUE = 'bench';

export const bullmqDriver: PeerDriver = {
  name: 'bullmq',
  title: 'BullMQ',
  async openQueue(p: BaselineParams, prefix: string): Promise<PeerQueue> {
    const { Queue } = await loadBullmq();
    const queue = new Queue<BaselineJobData>(QUEUE, { connection: { url: p.redis }, prefix });
    return {
      ready: async () => {
        await queue.waitUntilReady();
      },
      add: async (job) => {
        await queue.add(
          'run',
          { thread_id: job.thread_id, run_id: job.run_id },
          {
            jobId: job.dispatch_id,
            attempts: p.maxAttempts,
            backoff: { type: 'exponential', delay: p.retryDelayMs },
          },
        );
      },
      destroy: async () => {
        try {
          await queue.obliterate({ force: true });
        } finally {
          await queue.close();
        }
      },
    };
  },
  workerConfig: (p, node, prefix, concurrency) => ({
    mode: 'bullmq',
    node,
    redis: p.redis,
    queue: QUEUE,
    prefix,
    concurrency,
    runMs: p.runMsSpec,
    failRate: p.failRate,
  }),
};

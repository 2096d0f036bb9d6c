/**
 * The GroupMQ side of the baseline, inside a node process: a GroupMQ worker on the same Redis running the same
 * simulated work (run time, failure rate, attempts, exponential retry delay) and reporting the same start/end
 * lines as a Mailbox node. GroupMQ keeps one active job per group, so with thread = group it holds the same
 * one-run-per-thread rule as the Mailbox. GroupMQ is a dev dependency, imported only when asked for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { BaselineJobData } from './bullmq-worker.js';
import { loadPeerPackage } from './peer-package.js';
import type { NodeMessage } from './protocol.js';
import { preciseNow } from './protocol.js';
import { sampleRunMs } from './run-ms.js';
import type { RunMsDistribution } from './run-ms.js';

export interface GroupmqWorkerOptions {
  node: string;
  redis: string;
  /** GroupMQ namespace (its keys are `groupmq:<namespace>:…`). */
  namespace: string;
  concurrency: number;
  runMs: RunMsDistribution;
  failRate: number;
  maxAttempts: number;
  retryDelayMs: number;
  emit(msg: NodeMessage): void;
}

const SIMULATED_FAILURE = 'simulated transient failure';
const CLOSE_GRACE_MS = 5000;

export function loadGroupmq(): Promise<typeof import('groupmq')> {
  return loadPeerPackage('groupmq', () => import('groupmq'));
}

/** The exponential retry delay BullMQ uses for the same option: `delay × 2^(attempt − 1)`. */
export const groupmqBackoff =
  (retryDelayMs: number) =>
  (attempt: number): number =>
    retryDelayMs * 2 ** Math.max(0, attempt - 1);

/** Start the worker; resolves with its stop function once its Redis connection answers. */
export async function startGroupmqWorker(opts: GroupmqWorkerOptions): Promise<() => Promise<void>> {
  const { Queue, Worker } = await loadGroupmq();
  const { emit } = opts;
  const redis = new Redis(opts.redis, { maxRetriesPerRequest: null });
  await redis.ping();
  const queue = new Queue<BaselineJobData>({
    redis,
    namespace: opts.namespace,
    maxAttempts: opts.maxAttempts,
  });
  // The worker starts polling as soon as it is constructed.
  const worker = new Worker<BaselineJobData>({
    queue,
    concurrency: opts.concurrency,
    maxAttempts: opts.maxAttempts,
    backoff: groupmqBackoff(opts.retryDelayMs),
    handler: async (job) => {
      const attempt = Number(job.attempts) + 1;
      const claim = `${opts.node}:${attempt}`;
      emit({
        t: 'start',
        d: job.id,
        th: job.data.thread_id,
        r: job.data.run_id,
        c: claim,
        i: claim,
        a: attempt,
        at: preciseNow(),
      });
      const ms = sampleRunMs(opts.runMs);
      if (ms > 0) await sleep(ms);
      const fail = opts.failRate > 0 && Math.random() < opts.failRate;
      emit({ t: 'end', d: job.id, c: claim, at: preciseNow(), o: fail ? 'retry' : 'completed' });
      if (fail) throw new Error(SIMULATED_FAILURE);
    },
  });
  worker.on('completed', (job) => emit({ t: 'event', e: 'completed', d: job.id }));
  // Emitted before GroupMQ records the retry or the dead letter; its own rule decides which (attempts + 1 ≥ max).
  worker.on('failed', (job) => {
    const exhausted = Number(job.attemptsMade) + 1 >= opts.maxAttempts;
    emit({ t: 'event', e: exhausted ? 'deadLettered' : 'retried', d: job.id });
  });
  worker.on('error', (err) => {
    // GroupMQ also reports every failed job as an error: only other errors are news.
    if (err.message !== SIMULATED_FAILURE) process.stderr.write(`[${opts.node} groupmq] ${err.message}\n`);
  });
  return async () => {
    await worker.close(CLOSE_GRACE_MS);
    await queue.close();
  };
}

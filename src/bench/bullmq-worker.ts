/**
 * The BullMQ side of the baseline, inside a node process: a BullMQ worker on the same Redis running the same
 * simulated work (run time, failure rate) and reporting the same start/end lines as a Mailbox node. BullMQ is a
 * dev dependency, so it is imported only when the baseline is asked for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadPeerPackage } from './peer-package.js';
import type { NodeMessage } from './protocol.js';
import { preciseNow } from './protocol.js';
import { sampleRunMs } from './run-ms.js';
import type { RunMsDistribution } from './run-ms.js';

export interface BullmqWorkerOptions {
  node: string;
  redis: string;
  queue: string;
  prefix: string;
  concurrency: number;
  runMs: RunMsDistribution;
  failRate: number;
  emit(msg: NodeMessage): void;
}

export interface BaselineJobData {
  thread_id: string;
  run_id: string;
}

export function loadBullmq(): Promise<typeof import('bullmq')> {
  return loadPeerPackage('bullmq', () => import('bullmq'));
}

/** Start the worker; resolves with its stop function once it is connected. */
export async function startBullmqWorker(opts: BullmqWorkerOptions): Promise<() => Promise<void>> {
  const { Worker } = await loadBullmq();
  const { emit } = opts;
  const worker = new Worker<BaselineJobData>(
    opts.queue,
    async (job, token) => {
      const id = job.id ?? '';
      const claim = `${token ?? 'token'}:${job.attemptsMade}`;
      emit({
        t: 'start',
        d: id,
        th: job.data.thread_id,
        r: job.data.run_id,
        c: claim,
        i: claim,
        a: job.attemptsMade + 1,
        at: preciseNow(),
      });
      const ms = sampleRunMs(opts.runMs);
      if (ms > 0) await sleep(ms);
      const fail = opts.failRate > 0 && Math.random() < opts.failRate;
      emit({ t: 'end', d: id, c: claim, at: preciseNow(), o: fail ? 'retry' : 'completed' });
      if (fail) throw new Error('simulated transient failure');
      return 'ok';
    },
    {
      connection: { url: opts.redis, maxRetriesPerRequest: null },
      prefix: opts.prefix,
      concurrency: opts.concurrency,
    },
  );
  worker.on('completed', (job) => emit({ t: 'event', e: 'completed', d: job.id ?? '' }));
  worker.on('failed', (job) => {
    if (!job) return;
    const exhausted = job.attemptsMade >= (job.opts.attempts ?? 1);
    emit({ t: 'event', e: exhausted ? 'deadLettered' : 'retried', d: job.id ?? '' });
  });
  worker.on('error', (err) => process.stderr.write(`[${opts.node} bullmq] ${err.message}\n`));
  await worker.waitUntilReady();
  return async () => {
    await worker.close();
  };
}

/**
 * `--baseline bullmq`: the same workload shape — number of jobs, payload (thread and run ids), nodes as separate
 * processes, total concurrency equal to the Mailbox run's thread count, simulated run time, failure rate with
 * the same attempts and base retry delay, same submit rate — through BullMQ on the same Redis, in its own key
 * prefix, obliterated afterwards.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LatencySummary } from './histogram.js';
import { LatencyHistogram } from './histogram.js';
import { loadBullmq } from './bullmq-worker.js';
import type { BaselineJobData } from './bullmq-worker.js';
import type { NodeConfig } from './node-config.js';
import { spawnNodeProcess } from './nodes.js';
import type { NodeHandle } from './nodes.js';
import type { ProgressDisplay } from './progress.js';
import { preciseNow } from './protocol.js';
import type { NodeMessage } from './protocol.js';
import type { TimelineSample } from './results.js';
import { Submitter } from './submitter.js';
import { EnqueueTimes, Timeline, dispatchIdOf, dispatchIndex, runIdOf, threadIdOf } from './timeline.js';

export interface BaselineParams {
  redis: string;
  namespace: string;
  nodes: number;
  threads: number;
  dispatches: number;
  runMsSpec: string;
  failRate: number;
  rate: number | null;
  maxAttempts: number;
  retryDelayMs: number;
  drainTimeoutMs: number;
  progress: ProgressDisplay;
  signal?: AbortSignal;
}

export interface BaselineRun {
  name: 'bullmq';
  dispatches: number;
  completed: number;
  failed: number;
  duration_s: number;
  throughput_per_s: number;
  enqueue_to_start_ms: LatencySummary;
  concurrency_per_node: number;
  timeline: TimelineSample[];
}

const QUEUE = 'bench';
const POLL_MS = 100;
const SAMPLE_MS = 1000;
const ENQUEUE_CONCURRENCY = 128;

export async function runBullmqBaseline(p: BaselineParams): Promise<BaselineRun> {
  const { Queue } = await loadBullmq();
  const prefix = `${p.namespace}-bullmq`;
  const concurrency = Math.max(1, Math.ceil(p.threads / p.nodes));
  const queue = new Queue<BaselineJobData>(QUEUE, { connection: { url: p.redis }, prefix });
  const nodeIds = Array.from({ length: p.nodes }, (_, i) => `bullmq-${i + 1}`);
  const nodeIndex = new Map(nodeIds.map((id, i) => [id, i]));
  let runStart = preciseNow();
  const timeline = new Timeline(nodeIndex, runStart);
  const e2s = new LatencyHistogram();
  const enqueueTimes = new EnqueueTimes();
  const nodes: NodeHandle[] = [];
  let completed = 0;
  let failed = 0;
  let lastDoneAt = 0;
  const errors: string[] = [];

  const onMessage = (_node: string, msg: NodeMessage): void => {
    if (msg.t === 'start') {
      const idx = dispatchIndex(msg.d);
      const at = idx >= 0 ? enqueueTimes.take(idx) : Number.NaN;
      if (!Number.isNaN(at)) {
        e2s.recordMs(msg.at - at);
        timeline.e2sInterval.recordMs(msg.at - at);
      }
      timeline.recordStart(_node);
    } else if (msg.t === 'event') {
      if (msg.e === 'completed') completed += 1;
      else if (msg.e === 'deadLettered') failed += 1;
      if (msg.e !== 'retried') lastDoneAt = preciseNow();
    } else if (msg.t === 'error') {
      errors.push(`${_node}: ${msg.message}`);
    }
  };

  try {
    p.progress.note(
      `bench: BullMQ baseline — ${p.nodes} worker process(es), concurrency ${concurrency} each, prefix ${prefix}`,
    );
    for (const id of nodeIds) {
      const config: NodeConfig = {
        mode: 'bullmq',
        node: id,
        redis: p.redis,
        queue: QUEUE,
        prefix,
        concurrency,
        runMs: p.runMsSpec,
        failRate: p.failRate,
      };
      nodes.push(spawnNodeProcess(config, onMessage));
    }
    await Promise.all(nodes.map((n) => n.ready));
    await queue.waitUntilReady();
    runStart = preciseNow();
    timeline.begin(runStart);

    const submitter = new Submitter(
      {
        count: p.dispatches,
        durationMs: null,
        rate: p.rate,
        maxPending: null,
        concurrency: ENQUEUE_CONCURRENCY,
      },
      async (i) => {
        enqueueTimes.set(i, preciseNow());
        await queue.add(
          'run',
          { thread_id: threadIdOf(i, p.threads), run_id: runIdOf(i) },
          {
            jobId: dispatchIdOf(i),
            attempts: p.maxAttempts,
            backoff: { type: 'exponential', delay: p.retryDelayMs },
          },
        );
      },
    );
    const submitting = submitter.run();
    const submission: { error: Error | null } = { error: null };
    void submitting.then((o) => (submission.error = o.error));
    let nextSampleAt = runStart + SAMPLE_MS;
    const startedDrainAt = { value: null as number | null };
    for (;;) {
      await sleep(POLL_MS);
      const now = preciseNow();
      const counts = {
        completed,
        terminal: completed + failed,
        inFlight: 0,
        queued: submitter.submitted - completed - failed,
      };
      if (now >= nextSampleAt) {
        timeline.sample(now, counts);
        nextSampleAt += SAMPLE_MS;
      }
      p.progress.update({
        label: 'bullmq',
        elapsedMs: now - runStart,
        submitted: submitter.submitted,
        total: p.dispatches,
        completed,
        terminal: completed + failed,
        inFlight: 0,
        queued: counts.queued,
        rate: timeline.currentRate(now, completed),
      });
      if (p.signal?.aborted) {
        submitter.stop();
        break;
      }
      if (submission.error) break;
      if (submitter.submitted < p.dispatches) continue;
      startedDrainAt.value ??= now;
      if (completed + failed >= p.dispatches) break;
      if (now - startedDrainAt.value > p.drainTimeoutMs) {
        errors.push(`timed out with ${p.dispatches - completed - failed} job(s) unfinished`);
        break;
      }
    }
    const outcome = await submitting;
    if (outcome.error) errors.push(`submitting: ${outcome.error.message}`);
    const end = preciseNow();
    timeline.sample(end, { completed, terminal: completed + failed, inFlight: 0, queued: 0 });
    p.progress.finish(null);
    if (errors.length > 0) throw new Error(errors.join('; '));
    const durationS = Math.max(((lastDoneAt > runStart ? lastDoneAt : end) - runStart) / 1000, 1e-3);
    return {
      name: 'bullmq',
      dispatches: p.dispatches,
      completed,
      failed,
      duration_s: Math.round(durationS * 1000) / 1000,
      throughput_per_s: Math.round((completed / durationS) * 10) / 10,
      enqueue_to_start_ms: e2s.summary(),
      concurrency_per_node: concurrency,
      timeline: timeline.samples,
    };
  } finally {
    await Promise.all(nodes.map((n) => n.stop(10_000).catch(() => undefined)));
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
      e2s.destroy();
      timeline.destroy();
    }
  }
}

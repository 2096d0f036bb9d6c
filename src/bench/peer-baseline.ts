/**
 * `--baseline <peer>`: the same workload shape as the Mailbox run — number of jobs, payload (thread and run
 * ids), worker nodes as separate processes, total concurrency equal to the Mailbox run's thread count, simulated
 * run time, failure rate with the same attempts and base retry delay, same submit rate — through another queue
 * on the same Redis, in its own key prefix, deleted afterwards. Each peer is a `PeerDriver`: how to enqueue and
 * clean up in the coordinator, and which worker a node process runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CostMeter } from './cost.js';
import { LatencyHistogram } from './histogram.js';
import type { NodeConfig } from './node-config.js';
import { spawnNodeProcess } from './nodes.js';
import type { NodeHandle } from './nodes.js';
import type { ProgressDisplay } from './progress.js';
import { preciseNow } from './protocol.js';
import type { NodeMessage } from './protocol.js';
import type { BaselineName, PeerResult } from './results.js';
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

/** One job of the workload, as the coordinator submits it. */
export interface PeerJob {
  /** Also the job id, so a worker's start line maps back to its enqueue time. */
  dispatch_id: string;
  thread_id: string;
  run_id: string;
}

/** The coordinator's side of a peer queue. */
export interface PeerQueue {
  /** Resolves once the queue can take jobs. */
  ready(): Promise<void>;
  add(job: PeerJob): Promise<void>;
  /** Delete every key of the run's prefix, then close. */
  destroy(): Promise<void>;
}

export interface PeerDriver {
  name: BaselineName;
  /** How the peer calls itself, for progress notes. */
  title: string;
  openQueue(p: BaselineParams, prefix: string): Promise<PeerQueue>;
  /** The node process configuration of worker `node`. */
  workerConfig(p: BaselineParams, node: string, prefix: string, concurrency: number): NodeConfig;
}

/** A peer run without the ratio (the caller knows its own throughput). */
export type BaselineRun = Omit<PeerResult, 'ratio'>;

const POLL_MS = 100;
const SAMPLE_MS = 1000;
const ENQUEUE_CONCURRENCY = 128;

export async function runPeerBaseline(p: BaselineParams, driver: PeerDriver): Promise<BaselineRun> {
  const prefix = `${p.namespace}-${driver.name}`;
  const concurrency = Math.max(1, Math.ceil(p.threads / p.nodes));
  const queue = await driver.openQueue(p, prefix);
  const nodeIds = Array.from({ length: p.nodes }, (_, i) => `${driver.name}-${i + 1}`);
  const nodeIndex = new Map(nodeIds.map((id, i) => [id, i]));
  let runStart = preciseNow();
  const timeline = new Timeline(nodeIndex, runStart);
  const e2s = new LatencyHistogram();
  const enqueueTimes = new EnqueueTimes();
  const nodes: NodeHandle[] = [];
  let meter: CostMeter | null = null;
  let completed = 0;
  let failed = 0;
  let lastDoneAt = 0;
  const errors: string[] = [];

  const onMessage = (node: string, msg: NodeMessage): void => {
    if (msg.t === 'start') {
      const idx = dispatchIndex(msg.d);
      const at = idx >= 0 ? enqueueTimes.take(idx) : Number.NaN;
      if (!Number.isNaN(at)) {
        e2s.recordMs(msg.at - at);
        timeline.e2sInterval.recordMs(msg.at - at);
      }
      timeline.recordStart(node);
    } else if (msg.t === 'event') {
      if (msg.e === 'completed') completed += 1;
      else if (msg.e === 'deadLettered') failed += 1;
      if (msg.e !== 'retried') lastDoneAt = preciseNow();
    } else if (msg.t === 'error') {
      errors.push(`${node}: ${msg.message}`);
    }
  };

  try {
    p.progress.note(
      `bench: ${driver.title} baseline — ${p.nodes} worker process(es), concurrency ${concurrency} each, prefix ${prefix}`,
    );
    for (const id of nodeIds)
      nodes.push(spawnNodeProcess(driver.workerConfig(p, id, prefix, concurrency), onMessage));
    await Promise.all(nodes.map((n) => n.ready));
    await queue.ready();
    meter = await CostMeter.begin({ redis: p.redis, nats: null, nodes });
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
        await queue.add({
          dispatch_id: dispatchIdOf(i),
          thread_id: threadIdOf(i, p.threads),
          run_id: runIdOf(i),
        });
      },
    );
    const submitting = submitter.run();
    const submission: { error: Error | null } = { error: null };
    void submitting.then((o) => (submission.error = o.error));
    let nextSampleAt = runStart + SAMPLE_MS;
    let drainStartedAt: number | null = null;
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
        label: driver.name,
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
      drainStartedAt ??= now;
      if (completed + failed >= p.dispatches) break;
      if (now - drainStartedAt > p.drainTimeoutMs) {
        errors.push(`timed out with ${p.dispatches - completed - failed} job(s) unfinished`);
        break;
      }
    }
    const outcome = await submitting;
    if (outcome.error) errors.push(`submitting: ${outcome.error.message}`);
    const end = preciseNow();
    const cost = await meter.end(outcome.submitted);
    meter = null;
    timeline.sample(end, { completed, terminal: completed + failed, inFlight: 0, queued: 0 });
    p.progress.finish(null);
    if (errors.length > 0) throw new Error(errors.join('; '));
    const durationS = Math.max(((lastDoneAt > runStart ? lastDoneAt : end) - runStart) / 1000, 1e-3);
    return {
      name: driver.name,
      dispatches: p.dispatches,
      completed,
      failed,
      duration_s: Math.round(durationS * 1000) / 1000,
      throughput_per_s: Math.round((completed / durationS) * 10) / 10,
      enqueue_to_start_ms: e2s.summary(),
      concurrency_per_node: concurrency,
      timeline: timeline.samples,
      cpu_us_per_dispatch: cost.cpu_us_per_dispatch,
      redis_commands_per_dispatch: cost.redis_commands_per_dispatch,
      cost_notes: cost.notes,
    };
  } finally {
    meter?.close();
    await Promise.all(nodes.map((n) => n.stop(10_000).catch(() => undefined)));
    try {
      await queue.destroy();
    } finally {
      e2s.destroy();
      timeline.destroy();
    }
  }
}

/**
 * The bench coordinator: picks the backend, starts the worker nodes, submits the workload, steers and interrupts
 * runs, optionally SIGKILLs a node, waits until every dispatch is terminal, checks the invariants from the
 * store's records and the nodes' execution logs, tears the namespace down, and runs the `--baseline` peers
 * (BullMQ, GroupMQ) through the same workload. Every run measures what it cost per dispatch (cost.ts).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { queuedDispatch } from '../contract/helpers.js';
import type { LiveRunCommand, LiveRunTarget } from '../contract/types.js';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import { Mailbox } from '../mailbox/index.js';
import type { MailboxConfig } from '../mailbox/types.js';
import { chooseBackend, openStore } from './backend.js';
import type { BackendSpec, BenchStore, OpenStoreOptions } from './backend.js';
import { PEER_DRIVERS, ensurePeerPackages } from './baselines.js';
import { CostMeter } from './cost.js';
import type { PhaseCost } from './cost.js';
import { LatencyHistogram } from './histogram.js';
import { EchoClient, echoSubject } from './nats-echo.js';
import { InvariantChecker, emptyStatusCounts } from './invariants.js';
import type { StatusCounts } from './invariants.js';
import { ExecutionLog } from './execution-log.js';
import type { NodeConfig } from './node-config.js';
import { spawnNodeProcess, startInProcessNode } from './nodes.js';
import type { NodeHandle } from './nodes.js';
import type { BenchOptions } from './options.js';
import { ProgressDisplay } from './progress.js';
import type { ProgressState, ProgressStream } from './progress.js';
import { preciseNow } from './protocol.js';
import type { NodeMessage } from './protocol.js';
import { runPeerBaseline } from './peer-baseline.js';
import type { BenchResult, NodeStats, PeerResult } from './results.js';
import { formatRunMs } from './run-ms.js';
import { Submitter } from './submitter.js';
import { EnqueueTimes, Timeline, dispatchIdOf, dispatchIndex, runIdOf, threadIdOf } from './timeline.js';
import type { ProgressCounts } from './timeline.js';

export interface BenchIO {
  /** Progress and notes go here (stderr), never to stdout. */
  stderr: ProgressStream;
  /** Aborting stops the run early (Ctrl-C); the namespace is still torn down. */
  signal?: AbortSignal;
}

const POLL_MS = 100;
const SAMPLE_MS = 1000;
const ENQUEUE_CONCURRENCY = 128;
const LOAD_CONCURRENCY = 64;
const MAX_OUTSTANDING_LIVE = 256;
const RELEASE_TIMEOUT_MS = 30_000;
const RELEASE_POLL_MS = 5;

const LIVE_PING: LiveRunCommand = {
  Messages: [{ role: 'user', content: [{ type: 'text', text: 'bench: live steering ping' }] }],
};

export function benchNamespace(): string {
  return `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Mailbox settings for bench nodes: short leases so a killed node's work is reclaimed within seconds, no GC. */
export function benchMailboxConfig(opts: BenchOptions): Partial<MailboxConfig> {
  return {
    leaseMs: opts.leaseMs,
    leaseRenewalIntervalMs: Math.max(20, Math.floor(opts.leaseMs / 3)),
    sweepIntervalMs: Math.max(20, Math.floor(opts.leaseMs / 2)),
    // The invariant check reads back every record, so nothing may be purged during a run.
    gcIntervalMs: 3_600_000,
    gcTtlMs: 86_400_000,
    defaultMaxAttempts: opts.maxAttempts,
    defaultRetryDelayMs: opts.retryDelayMs,
    maxRetryDelayMs: Math.max(opts.retryDelayMs * 8, 1000),
    signalNackBaseDelayMs: 500,
    signalNackMaxDelayMs: 2000,
    stopGraceMs: 2000,
    // Stores without signals (memory): idle threads are polled for work this often.
    idlePollIntervalMs: 5,
    liveSubscriptionLingerMs: opts.liveLingerMs,
    epochPollIntervalMs: opts.epochPollMs,
  };
}

/** Store sweeper settings for `--kill-node-at` runs (see `runBench`). */
export function killRunStoreOptions(leaseMs: number): OpenStoreOptions {
  return {
    sweepIntervalMs: Math.max(250, Math.floor(leaseMs / 2)),
    republishAfterMs: Math.max(1000, 2 * leaseMs),
  };
}

/** `--partitions`, `--redis-cluster` / `--local-cluster` and `--durability`, for the coordinator and every node. */
export function clusterStoreOptions(
  opts: Pick<BenchOptions, 'partitions' | 'redisCluster' | 'durability' | 'jetstreamReplicas'>,
): OpenStoreOptions {
  return {
    ...(opts.partitions !== 1 ? { partitions: opts.partitions } : {}),
    ...(opts.redisCluster !== null ? { redisCluster: opts.redisCluster } : {}),
    ...(opts.durability !== 'async' ? { durability: opts.durability } : {}),
    ...(opts.jetstreamReplicas !== 1 ? { jetstreamReplicas: opts.jetstreamReplicas } : {}),
  };
}

export function backendLabel(spec: BackendSpec): string {
  return spec.kind === 'memory' ? 'memory' : `redis+${spec.signals}`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function storeCounts(store: BenchStore): Promise<StatusCounts> {
  const values = await Promise.all(RUN_DISPATCH_STATUSES.map((s) => store.countDispatchesByStatus(s)));
  const counts = emptyStatusCounts();
  RUN_DISPATCH_STATUSES.forEach((s, i) => (counts[s] = values[i] ?? 0));
  return counts;
}

function progressCounts(c: StatusCounts): ProgressCounts {
  return {
    completed: c.Acked,
    terminal: c.Acked + c.Cancelled + c.Superseded + c.DeadLetter,
    inFlight: c.Claimed,
    queued: c.Queued,
  };
}

function newNodeStats(node: string, pid: number | null): NodeStats {
  return {
    node,
    pid,
    executions: 0,
    acked: 0,
    retries: 0,
    dead_letters: 0,
    superseded: 0,
    cancelled: 0,
    aborted: 0,
    live_acks: 0,
    killed: false,
    in_flight_at_kill: 0,
  };
}

/** Everything the coordinator learns while the workload runs. */
class RunState {
  readonly log = new ExecutionLog();
  readonly stats = new Map<string, NodeStats>();
  readonly enqueueTimes = new EnqueueTimes();
  readonly e2s = new LatencyHistogram();
  /** enqueue→start of dispatches enqueued once the warm-up was over (`--warmup`). */
  readonly e2sAfterWarmup = new LatencyHistogram();
  /** preciseNow() of the first enqueue; NaN before it. */
  firstEnqueueAt = Number.NaN;
  readonly live = new LatencyHistogram();
  readonly rawNats = new LatencyHistogram();
  readonly release = new LatencyHistogram();
  readonly releaseWaiters = new Map<string, () => void>();
  readonly killedAt = new Map<string, number>();
  liveSent = 0;
  liveDelivered = 0;
  liveOutstanding = 0;
  interrupts = 0;
  interruptsWithActive = 0;
  interruptsCancelDelivered = 0;
  interruptsTimedOut = 0;
  lastTerminalAt = 0;
  killed: { node: string; at: number; inFlight: number } | null = null;
  readonly errors: string[] = [];

  constructor(readonly timeline: Timeline) {}

  destroy(): void {
    this.e2s.destroy();
    this.e2sAfterWarmup.destroy();
    this.live.destroy();
    this.rawNats.destroy();
    this.release.destroy();
    this.timeline.destroy();
  }
}

export async function runBench(opts: BenchOptions, io: BenchIO): Promise<BenchResult> {
  // A missing peer package is reported now, not after the whole Mailbox workload ran.
  await ensurePeerPackages(opts.baselines);
  const progress = new ProgressDisplay(io.stderr, opts.progress);
  const namespace = benchNamespace();
  const choice = await chooseBackend({
    backend: opts.backend,
    redis: opts.redis,
    redisSource: opts.redisSource,
    nats: opts.nats,
    signals: opts.signals,
    natsExplicit: opts.natsExplicit,
    namespace,
  });
  const spec = choice.spec;
  if (spec.kind === 'memory' && opts.killNodeAt) {
    throw new Error(
      '--kill-node-at needs node processes, but the memory backend was chosen: ' + choice.reason,
    );
  }
  if (spec.kind === 'memory' && opts.baselines.length > 0) {
    throw new Error(
      `--baseline ${opts.baselines.join(',')} needs Redis, but the memory backend was chosen: ` +
        choice.reason,
    );
  }
  const inProcess = spec.kind === 'memory';
  const liveAvailable = spec.kind === 'memory' || spec.nats !== null;
  progress.note(
    `bench: ${choice.reason}; ${opts.nodes} node(s) ${inProcess ? 'as in-process Mailboxes sharing one memory store (the memory store cannot span processes)' : 'as separate processes'}` +
      (spec.kind === 'redis' ? `; namespace ${namespace}` : ''),
  );
  const liveRate = liveAvailable ? opts.liveRate : 0;
  if (!liveAvailable && opts.liveRate > 0)
    progress.note('bench: no NATS, so no live commands (--live-rate ignored)');

  // Normally the stores' signal sweeper keeps its defaults: a short republish age turns a deep backlog into a
  // storm of republished signals. With a node kill, though, signals the dead node pulled but never acked come
  // back only after the transport's redelivery timeout (JetStream ack_wait, Redis Streams idle reclaim: 30 s by
  // default) or a republish, so a kill run republishes sooner to keep recovery within a few leases.
  const storeOptions: OpenStoreOptions = {
    ...(opts.killNodeAt ? killRunStoreOptions(opts.leaseMs) : {}),
    ...clusterStoreOptions(opts),
    ...(opts.quietClaimedThreads ? { quietClaimedThreads: true } : {}),
  };
  const store = await openStore(spec, storeOptions);
  if (opts.quietClaimedThreads) {
    progress.note('bench: quietClaimedThreads: no signal for an enqueue onto a thread that holds a claim');
  }
  // The coordinator's own Mailbox is never started (it runs nothing): it is the API the interrupts go through.
  const control = new Mailbox({
    store,
    executor: async () => ({ kind: 'fail', error: 'the bench coordinator runs nothing' }),
    consumerId: 'bench-coordinator',
  });
  const nodeIds = Array.from({ length: opts.nodes }, (_, i) => `node-${i + 1}`);
  const nodeIndex = new Map(nodeIds.map((id, i) => [id, i]));
  let runStart = preciseNow();
  const state = new RunState(new Timeline(nodeIndex, runStart));
  const nodes: NodeHandle[] = [];
  let nodesStopped = false;
  let echo: EchoClient | null = null;
  let meter: CostMeter | null = null;
  let tornDown = false;
  const tearDownOnce = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    await teardown(store, spec, state.errors);
  };

  const stopNodes = async (): Promise<void> => {
    if (nodesStopped) return;
    nodesStopped = true;
    await control.stop();
    await echo?.close().catch(() => undefined);
    await Promise.all(
      nodes.map((n) =>
        n.stop(10_000).catch((err: unknown) => state.errors.push(`stopping ${n.id}: ${describe(err)}`)),
      ),
    );
  };

  try {
    const onMessage = (node: string, msg: NodeMessage): void => handleMessage(node, msg);
    const mailboxConfig = benchMailboxConfig(opts);
    for (const id of nodeIds) {
      state.stats.set(id, newNodeStats(id, null));
      if (spec.kind === 'memory') {
        nodes.push(
          startInProcessNode(
            {
              nodeId: id,
              store,
              runMs: opts.runMs,
              failRate: opts.failRate,
              liveRate,
              interruptRate: opts.interruptRate,
              mailboxConfig,
            },
            onMessage,
          ),
        );
      } else {
        const config: NodeConfig = {
          mode: 'mailbox',
          node: id,
          redis: spec.redis,
          nats: spec.nats,
          signals: spec.signals,
          namespace: spec.namespace,
          store: storeOptions,
          runMs: opts.runMsSpec,
          failRate: opts.failRate,
          liveRate,
          interruptRate: opts.interruptRate,
          mailbox: mailboxConfig,
        };
        nodes.push(spawnNodeProcess(config, onMessage));
      }
    }
    await Promise.all(nodes.map((n) => n.ready));
    for (const n of nodes) {
      // A node that dies on its own is a failure of the run (its work is still reclaimed and checked).
      void n.exited.then(({ code, signal }) => {
        if (nodesStopped || state.killedAt.has(n.id)) return;
        const tail = n.stderrTail().trim().split('\n').slice(-5).join(' | ');
        state.errors.push(
          `${n.id} exited unexpectedly (code ${code ?? '-'}, signal ${signal ?? '-'})${tail ? `: ${tail}` : ''}`,
        );
      });
    }
    if (spec.kind === 'redis' && spec.nats && liveRate > 0) echo = await EchoClient.open(spec.nats);
    for (const n of nodes) state.stats.get(n.id)!.pid = n.pid;

    // ---- message handling (synchronous; side work is fire-and-forget with its own error accounting) ----
    function handleMessage(node: string, msg: NodeMessage): void {
      const stats = state.stats.get(node);
      if (!stats) return;
      switch (msg.t) {
        case 'start': {
          const idx = dispatchIndex(msg.d);
          const enqueuedAt = idx >= 0 ? state.enqueueTimes.take(idx) : Number.NaN;
          if (!Number.isNaN(enqueuedAt)) {
            state.e2s.recordMs(msg.at - enqueuedAt);
            if (opts.warmupMs > 0 && enqueuedAt >= state.firstEnqueueAt + opts.warmupMs) {
              state.e2sAfterWarmup.recordMs(msg.at - enqueuedAt);
            }
            state.timeline.e2sInterval.recordMs(msg.at - enqueuedAt);
          }
          state.log.start({
            dispatch_id: msg.d,
            thread_id: msg.th,
            claim_token: msg.c,
            instance_id: msg.i,
            node,
            start: msg.at,
          });
          stats.executions += 1;
          state.timeline.recordStart(node);
          const target: LiveRunTarget = { thread_id: msg.th, run_id: msg.r, dispatch_id: msg.d };
          if (msg.l) void steer(target, node);
          if (msg.x) void interruptThread(msg.th, msg.d, msg.c);
          break;
        }
        case 'end': {
          state.log.end(msg.d, msg.c, msg.at);
          if (msg.o === 'aborted') stats.aborted += 1;
          break;
        }
        case 'event': {
          if (msg.e === 'retried') stats.retries += 1;
          else {
            if (msg.e === 'completed') stats.acked += 1;
            else if (msg.e === 'deadLettered') stats.dead_letters += 1;
            else if (msg.e === 'superseded') stats.superseded += 1;
            else stats.cancelled += 1;
            state.lastTerminalAt = preciseNow();
            state.releaseWaiters.get(msg.d)?.();
          }
          break;
        }
        case 'live':
          stats.live_acks += 1;
          break;
        case 'error':
          state.errors.push(`${node}: ${msg.message}`);
          break;
        default:
          break;
      }
    }

    async function steer(target: LiveRunTarget, node: string): Promise<void> {
      if (state.liveOutstanding >= MAX_OUTSTANDING_LIVE) return;
      state.liveOutstanding += 1;
      state.liveSent += 1;
      const t0 = preciseNow();
      try {
        const outcome = await store.deliverLiveTo(target, LIVE_PING);
        if (outcome === 'Delivered') {
          const rtt = preciseNow() - t0;
          state.liveDelivered += 1;
          state.live.recordMs(rtt);
          state.timeline.liveInterval.recordMs(rtt);
        }
        if (echo && spec.kind === 'redis') {
          const raw = await echo.ping(echoSubject(spec.namespace, node));
          if (raw !== null) state.rawNats.recordMs(raw);
        }
      } catch (err) {
        state.errors.push(`live command to ${target.dispatch_id ?? target.run_id}: ${describe(err)}`);
      } finally {
        state.liveOutstanding -= 1;
      }
    }

    /**
     * Interrupt the thread of a held run through the Mailbox API (bump the epoch, supersede queued work,
     * Cancel the active run on whichever node runs it) and time until the claim is released — seen as the owning
     * node's terminal event for the dispatch, or in the record, whichever comes first. Without a live channel
     * (no NATS) the Cancel cannot be delivered and the release comes from the node's next lease renewal.
     */
    async function interruptThread(threadId: string, dispatchId: string, claimToken: string): Promise<void> {
      state.interrupts += 1;
      const t0 = preciseNow();
      let released = false;
      const releasedByEvent = new Promise<void>((resolve) => state.releaseWaiters.set(dispatchId, resolve));
      void releasedByEvent.then(() => (released = true));
      try {
        const result = await control.interrupt(threadId);
        if (result.supersededCount > 0) state.lastTerminalAt = preciseNow();
        if (result.activeCancelled) state.interruptsCancelDelivered += 1;
        const deadline = t0 + RELEASE_TIMEOUT_MS;
        // A delivered Cancel proves the run was active; without one, the record tells.
        let wasActive = result.activeCancelled;
        while (!released && preciseNow() < deadline) {
          const record = await store.loadDispatch(dispatchId);
          if (!record || record.status !== 'Claimed' || record.claim_token !== claimToken) break;
          wasActive = true;
          await Promise.race([sleep(RELEASE_POLL_MS), releasedByEvent]);
        }
        if (!wasActive && !released) return; // the run was already over when the interrupt came
        state.interruptsWithActive += 1;
        const now = preciseNow();
        if (now >= deadline) state.interruptsTimedOut += 1;
        else state.release.recordMs(now - t0);
        state.lastTerminalAt = now;
      } catch (err) {
        state.errors.push(`interrupt of ${threadId}: ${describe(err)}`);
      } finally {
        state.releaseWaiters.delete(dispatchId);
      }
    }

    // ---- workload ----
    let lastCounts: ProgressCounts = { completed: 0, terminal: 0, inFlight: 0, queued: 0 };
    let lastStatus: StatusCounts = emptyStatusCounts();
    const submitter: Submitter = new Submitter(
      {
        count: opts.dispatches,
        durationMs: opts.durationMs,
        rate: opts.rate,
        maxPending: opts.maxPending,
        concurrency: ENQUEUE_CONCURRENCY,
      },
      async (i) => {
        const now = Date.now();
        const enqueuedAt = preciseNow();
        if (Number.isNaN(state.firstEnqueueAt)) state.firstEnqueueAt = enqueuedAt;
        state.enqueueTimes.set(i, enqueuedAt);
        await store.enqueue(
          queuedDispatch({
            dispatch_id: dispatchIdOf(i),
            thread_id: threadIdOf(i, opts.threads),
            run_id: runIdOf(i),
            created_at: now,
            max_attempts: opts.maxAttempts,
          }),
        );
      },
      () => submitter.submitted - lastCounts.terminal,
    );
    meter = await CostMeter.begin({
      redis: spec.kind === 'redis' ? spec.redis : null,
      nats: spec.kind === 'redis' ? spec.nats : null,
      nodes: inProcess ? null : nodes,
    });
    runStart = preciseNow();
    state.timeline.begin(runStart);
    const submission: { done: boolean; error: Error | null } = { done: false, error: null };
    const submitting = submitter.run().then((outcome) => {
      submission.done = true;
      submission.error = outcome.error;
    });
    const onAbort = (): void => submitter.stop();
    io.signal?.addEventListener('abort', onAbort, { once: true });

    const total = opts.dispatches;
    const progressState = (now: number): ProgressState => ({
      label: backendLabel(spec),
      elapsedMs: now - runStart,
      submitted: submitter.submitted,
      total,
      completed: lastCounts.completed,
      terminal: lastCounts.terminal,
      inFlight: lastCounts.inFlight,
      queued: lastCounts.queued,
      rate: state.timeline.currentRate(now, lastCounts.completed),
    });

    const maybeKill = (now: number): void => {
      const at = opts.killNodeAt;
      if (!at || state.killed) return;
      const goal = total ?? submitter.submitted;
      const due =
        at.kind === 'count'
          ? lastCounts.completed >= at.n
          : at.kind === 'fraction'
            ? lastCounts.completed >= at.f * goal && (total !== null || submission.done)
            : now - runStart >= at.ms;
      if (!due) return;
      const victim = nodes[nodes.length - 1]!;
      const inFlight = state.log.openOn(victim.id);
      victim.kill();
      const killTime = preciseNow();
      state.killedAt.set(victim.id, killTime);
      const stats = state.stats.get(victim.id)!;
      stats.killed = true;
      stats.in_flight_at_kill = inFlight;
      state.killed = { node: victim.id, at: killTime, inFlight };
      progress.note(
        `bench: SIGKILL ${victim.id} (pid ${victim.pid ?? '?'}) with ${inFlight} execution(s) in flight`,
      );
    };

    const countFailures = { count: 0, last: '' };
    let timedOut = false;
    let nextSampleAt = runStart + SAMPLE_MS;
    let drainStartedAt: number | null = null;
    for (;;) {
      await sleep(POLL_MS);
      const now = preciseNow();
      try {
        lastStatus = await storeCounts(store);
        lastCounts = progressCounts(lastStatus);
      } catch (err) {
        countFailures.count += 1;
        countFailures.last = describe(err);
      }
      if (now >= nextSampleAt) {
        state.timeline.sample(now, lastCounts);
        nextSampleAt += SAMPLE_MS;
      }
      progress.update(progressState(now));
      maybeKill(now);
      if (io.signal?.aborted) {
        state.errors.push('interrupted by the user');
        break;
      }
      if (!submission.done) continue;
      if (submission.error) {
        state.errors.push(`submitting: ${describe(submission.error)}`);
        break;
      }
      drainStartedAt ??= now;
      const allTerminal =
        lastStatus.Queued === 0 && lastStatus.Claimed === 0 && lastCounts.terminal >= submitter.submitted;
      if (allTerminal && state.liveOutstanding === 0 && state.releaseWaiters.size === 0) break;
      if (now - drainStartedAt > opts.drainTimeoutMs) {
        timedOut = true;
        break;
      }
    }
    io.signal?.removeEventListener('abort', onAbort);
    if (countFailures.count > 0) {
      state.errors.push(`counting dispatches failed ${countFailures.count}× (last: ${countFailures.last})`);
    }
    await submitting;
    const runEnd = preciseNow();
    // Before the nodes stop: they report their CPU while they still run.
    const cost: PhaseCost = await meter.end(submitter.submitted);
    meter = null;
    state.timeline.sample(runEnd, lastCounts);
    progress.finish(progressState(runEnd));

    await stopNodes();
    for (const n of nodes) {
      if (n.malformed > 0) state.errors.push(`${n.id} sent ${n.malformed} malformed protocol line(s)`);
    }

    // ---- invariants ----
    const submitted = submitter.submitted;
    const checker = new InvariantChecker(state.log, runEnd, state.killedAt);
    let retries = 0;
    for (let base = 0; base < submitted; base += LOAD_CONCURRENCY) {
      const ids = Array.from({ length: Math.min(LOAD_CONCURRENCY, submitted - base) }, (_, k) =>
        dispatchIdOf(base + k),
      );
      const records = await Promise.all(ids.map((id) => store.loadDispatch(id)));
      records.forEach((record, k) => {
        checker.addRecord(ids[k]!, record);
        if (record) retries += record.attempt_count;
      });
    }
    checker.setStoreCounts(await storeCounts(store));
    const invariants = checker.finish();

    const endAt = state.lastTerminalAt > runStart ? state.lastTerminalAt : runEnd;
    const durationS = Math.max((endAt - runStart) / 1000, 1e-3);
    const rc = invariants.record_counts;
    const result: BenchResult = {
      backend: backendLabel(spec),
      backend_detail: choice.reason,
      nodes: opts.nodes,
      node_mode: inProcess ? 'in-process' : 'process',
      threads: opts.threads,
      workload: {
        run_ms: formatRunMs(opts.runMs),
        fail_rate: opts.failRate,
        interrupt_rate: opts.interruptRate,
        live_rate: liveRate,
        rate_per_s: opts.rate,
        lease_ms: opts.leaseMs,
        max_attempts: opts.maxAttempts,
      },
      dispatches: submitted,
      completed: rc.Acked,
      dead_letters: rc.DeadLetter,
      superseded: rc.Superseded,
      cancelled: rc.Cancelled,
      retries,
      executions: state.log.size,
      duration_s: Math.round(durationS * 1000) / 1000,
      throughput_per_s: Math.round((rc.Acked / durationS) * 10) / 10,
      enqueue_to_start_ms: state.e2s.summary(),
      enqueue_to_start_after_warmup_ms:
        opts.warmupMs > 0 ? { ...state.e2sAfterWarmup.summary(), warmup_ms: opts.warmupMs } : null,
      live_rtt_ms: {
        ...state.live.summary(),
        sent: state.liveSent,
        delivered: state.liveDelivered,
        not_delivered: state.liveSent - state.liveDelivered,
      },
      raw_nats_rtt_ms: state.rawNats.summary(),
      interrupt_release_ms: {
        ...state.release.summary(),
        interrupts: state.interrupts,
        with_active_run: state.interruptsWithActive,
        cancel_delivered: state.interruptsCancelDelivered,
        timed_out: state.interruptsTimedOut,
      },
      per_node: nodeIds.map((id) => state.stats.get(id)!),
      killed_node: state.killed
        ? {
            node: state.killed.node,
            at_s: Math.round((state.killed.at - runStart) / 10) / 100,
            in_flight: state.killed.inFlight,
          }
        : null,
      invariants,
      cpu_us_per_dispatch: cost.cpu_us_per_dispatch,
      redis_commands_per_dispatch: cost.redis_commands_per_dispatch,
      cost_notes: cost.notes,
      baselines: [],
      timed_out: timedOut,
      errors: state.errors,
      timeline: state.timeline.samples,
    };

    // The namespace goes before the baseline runs, so the two never share a Redis with the other's leftovers.
    await tearDownOnce();

    if (spec.kind === 'redis') {
      for (const name of opts.baselines) {
        if (io.signal?.aborted) break;
        try {
          const peer = await runPeerBaseline(
            {
              redis: spec.redis,
              namespace,
              nodes: opts.nodes,
              threads: opts.threads,
              dispatches: submitted,
              runMsSpec: opts.runMsSpec,
              failRate: opts.failRate,
              rate: opts.rate,
              maxAttempts: opts.maxAttempts,
              retryDelayMs: opts.retryDelayMs,
              drainTimeoutMs: opts.drainTimeoutMs,
              progress,
              ...(io.signal ? { signal: io.signal } : {}),
            },
            PEER_DRIVERS[name],
          );
          const ratio =
            peer.throughput_per_s > 0
              ? Math.round((result.throughput_per_s / peer.throughput_per_s) * 100) / 100
              : 0;
          result.baselines.push({ ...peer, ratio });
        } catch (err) {
          state.errors.push(`${name} baseline: ${describe(err)}`);
        }
      }
      const first = result.baselines[0];
      if (first) result.baseline = firstBaseline(first);
    }
    return result;
  } catch (err) {
    meter?.close();
    await stopNodes();
    await tearDownOnce();
    throw err;
  } finally {
    state.destroy();
  }
}

/** `baseline` keeps the shape it had before `baselines`: the first peer without its cost fields. */
function firstBaseline(peer: PeerResult): NonNullable<BenchResult['baseline']> {
  const {
    cpu_us_per_dispatch: _cpu,
    redis_commands_per_dispatch: _commands,
    cost_notes: _notes,
    ...baseline
  } = peer;
  return baseline;
}

/** Destroy the run's namespace (distributed store) and close the store. */
async function teardown(store: BenchStore, spec: BackendSpec, errors: string[]): Promise<void> {
  try {
    if (spec.kind === 'redis' && store.destroyNamespace) await store.destroyNamespace();
  } catch (err) {
    errors.push(`destroying namespace: ${describe(err)}`);
  }
  try {
    await store.close();
  } catch (err) {
    errors.push(`closing the store: ${describe(err)}`);
  }
}

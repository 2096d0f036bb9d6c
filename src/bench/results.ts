/** What a bench run produces: the result object (`--json` prints it) and its human-readable rendering. */
import type { CpuPerDispatch, RedisCommandsPerDispatch } from './cost.js';
import type { LatencySummary } from './histogram.js';
import type { InvariantReport } from './invariants.js';

/** The queues `--baseline` can run the same workload through. */
export const BASELINE_NAMES = ['bullmq', 'groupmq'] as const;
export type BaselineName = (typeof BASELINE_NAMES)[number];
export const BASELINE_TITLES: Record<BaselineName, string> = { bullmq: 'BullMQ', groupmq: 'GroupMQ' };

export interface NodeStats {
  node: string;
  pid: number | null;
  /** Executor starts. */
  executions: number;
  /** Mailbox `completed` events (dispatches this node acked). */
  acked: number;
  retries: number;
  dead_letters: number;
  superseded: number;
  cancelled: number;
  /** Executions that ended early on their AbortSignal. */
  aborted: number;
  live_acks: number;
  killed: boolean;
  /** Executions started but never ended, when the node was killed. */
  in_flight_at_kill: number;
}

export interface TimelineSample {
  /** Seconds since the start of the run. */
  t: number;
  completed: number;
  terminal: number;
  /** Completed per second over the interval. */
  rate: number;
  in_flight: number;
  queued: number;
  e2s_p50: number;
  e2s_p99: number;
  live_p50: number;
  live_p99: number;
  /** Executions started per node during the interval (same order as `per_node`). */
  per_node: number[];
}

/** The first peer, as `baseline` (its shape predates `baselines`). */
export interface BaselineResult {
  name: BaselineName;
  dispatches: number;
  completed: number;
  failed: number;
  duration_s: number;
  throughput_per_s: number;
  /** Our throughput divided by the baseline's. */
  ratio: number;
  enqueue_to_start_ms: LatencySummary;
  concurrency_per_node: number;
  timeline: TimelineSample[];
}

/** One `--baseline` peer run, with its cost. */
export interface PeerResult extends BaselineResult {
  cpu_us_per_dispatch: CpuPerDispatch;
  redis_commands_per_dispatch: RedisCommandsPerDispatch | null;
  cost_notes: string[];
}

export interface BenchResult {
  /** `memory`, `redis+jetstream`, `redis+redis-streams` or `redis+none`. */
  backend: string;
  backend_detail: string;
  nodes: number;
  /** `process`: each node its own OS process; `in-process`: Mailbox instances sharing the coordinator's memory store. */
  node_mode: 'process' | 'in-process';
  threads: number;
  workload: {
    run_ms: string;
    fail_rate: number;
    interrupt_rate: number;
    live_rate: number;
    rate_per_s: number | null;
    lease_ms: number;
    max_attempts: number;
  };
  dispatches: number;
  completed: number;
  dead_letters: number;
  superseded: number;
  cancelled: number;
  retries: number;
  executions: number;
  duration_s: number;
  throughput_per_s: number;
  enqueue_to_start_ms: LatencySummary;
  /**
   * With `--warmup`: enqueue→start of the dispatches enqueued after the warm-up (steady state, excluding the
   * start-up backlog of cold node processes); null without it.
   */
  enqueue_to_start_after_warmup_ms: (LatencySummary & { warmup_ms: number }) | null;
  live_rtt_ms: LatencySummary & { sent: number; delivered: number; not_delivered: number };
  /** Bare NATS request-reply to the same node right after each live command (empty without NATS). */
  raw_nats_rtt_ms: LatencySummary;
  interrupt_release_ms: LatencySummary & {
    interrupts: number;
    /** Interrupts that found the held run still claimed (the latency is measured for these). */
    with_active_run: number;
    /** Interrupts whose live Cancel reached the run (none without NATS: the lease renewal releases it). */
    cancel_delivered: number;
    timed_out: number;
  };
  per_node: NodeStats[];
  killed_node: { node: string; at_s: number; in_flight: number } | null;
  invariants: InvariantReport;
  /**
   * CPU microseconds per dispatch of each process over the measured phase (submission start to the last
   * dispatch finished); Redis and nats-server are whole-server deltas.
   */
  cpu_us_per_dispatch: CpuPerDispatch;
  /** From Redis `INFO commandstats` deltas over the same phase; null without Redis. */
  redis_commands_per_dispatch: RedisCommandsPerDispatch | null;
  /** What the cost figures do not cover. */
  cost_notes: string[];
  /** The first of `baselines`, in the shape it had before there could be several. */
  baseline?: BaselineResult;
  /** Every `--baseline` peer in the order given (empty without `--baseline`). */
  baselines: PeerResult[];
  timed_out: boolean;
  errors: string[];
  /** Kept out of `--json` output (it grows with the run length); used by the HTML report. */
  timeline: TimelineSample[];
}

/** The `--json` object: the result without the timelines. */
export function resultForJson(result: BenchResult): Record<string, unknown> {
  const { timeline: _timeline, baseline, baselines, ...rest } = result;
  const peers = baselines.map(({ timeline: _peerTimeline, ...peer }) => peer);
  if (!baseline) return { ...rest, baselines: peers };
  const { timeline: _baselineTimeline, ...base } = baseline;
  return { ...rest, baseline: base, baselines: peers };
}

const n = (v: number): string => Math.round(v).toLocaleString('en-US');
const ms = (v: number): string => `${v.toFixed(2)} ms`;

const OUR_LABEL = 'awaken-mailbox';

interface CostRow {
  label: string;
  cpu: CpuPerDispatch;
  commands: RedisCommandsPerDispatch | null;
}

function cpuTotal(c: CpuPerDispatch): number {
  return (c.redis ?? 0) + (c.nats ?? 0) + c.coordinator + (c.nodes ?? 0);
}

/** One line: CPU µs per dispatch of each party and the total. */
export function cpuSummary(c: CpuPerDispatch): string {
  const v = (x: number | null): string => (x === null ? '–' : `${x.toFixed(1)} µs`);
  return (
    `redis ${v(c.redis)}, nats ${v(c.nats)}, coordinator ${v(c.coordinator)}, nodes ${v(c.nodes)} ` +
    `(total ${cpuTotal(c).toFixed(1)} µs)`
  );
}

/** The peers of a result: `baselines`, or the lone `baseline` of a result built before there could be several. */
export function peersOf(r: Pick<BenchResult, 'baseline' | 'baselines'>): BaselineResult[] {
  return r.baselines.length > 0 ? r.baselines : r.baseline ? [r.baseline] : [];
}

/** The CPU table and the Redis command lines: our run first, then each peer. */
function costLines(rows: CostRow[], notes: string[]): string[] {
  const cell = (v: number | null): string => (v === null ? '–' : v.toFixed(1)).padStart(12);
  const lines = [
    '  CPU per dispatch, µs (Redis and nats-server: deltas of the whole server over the measured phase)',
    `    ${''.padEnd(16)}${['redis', 'nats', 'coordinator', 'nodes', 'total'].map((h) => h.padStart(12)).join('')}`,
  ];
  for (const r of rows) {
    lines.push(
      `    ${r.label.padEnd(16)}${cell(r.cpu.redis)}${cell(r.cpu.nats)}${cell(r.cpu.coordinator)}` +
        `${cell(r.cpu.nodes)}${cell(cpuTotal(r.cpu))}`,
    );
  }
  if (rows.some((r) => r.commands)) {
    lines.push('  Redis commands per dispatch (whole server; the commands scripts run count too)');
    for (const r of rows) {
      const c = r.commands;
      if (!c) continue;
      const scripts =
        c.script_usec_per_call !== null
          ? `${c.scripts.toFixed(2)} scripts at ${c.script_usec_per_call.toFixed(1)} µs`
          : '0 scripts';
      const top = c.top.map((t) => `${t.command} ${t.per_dispatch.toFixed(2)}`).join(', ');
      lines.push(`    ${r.label.padEnd(16)}${c.total.toFixed(2)} in all, ${scripts}${top ? `; ${top}` : ''}`);
    }
  }
  for (const note of new Set(notes)) lines.push(`    note: ${note}`);
  return lines;
}

function latencyLine(label: string, s: LatencySummary): string {
  if (s.count === 0) return `  ${label.padEnd(24)} (none)`;
  return (
    `  ${label.padEnd(24)} p50 ${ms(s.p50)}  p90 ${ms(s.p90)}  p99 ${ms(s.p99)}  ` +
    `p99.9 ${ms(s.p999)}  max ${ms(s.max)}  (n=${n(s.count)})`
  );
}

export function formatResult(r: BenchResult): string {
  const lines: string[] = [];
  lines.push(`awaken-mailbox bench — ${r.backend} (${r.backend_detail})`);
  lines.push(
    `  nodes ${r.nodes} (${r.node_mode === 'process' ? 'separate processes' : 'in-process Mailboxes on one shared memory store'}), ` +
      `threads ${r.threads}, run-ms ${r.workload.run_ms}, fail-rate ${r.workload.fail_rate}, ` +
      `interrupt-rate ${r.workload.interrupt_rate}, live-rate ${r.workload.live_rate}` +
      (r.workload.rate_per_s !== null
        ? `, submit rate ${n(r.workload.rate_per_s)}/s`
        : ', submit as fast as possible'),
  );
  lines.push('');
  lines.push(
    `  dispatches ${n(r.dispatches)}  completed ${n(r.completed)}  dead letters ${n(r.dead_letters)}  ` +
      `superseded ${n(r.superseded)}  cancelled ${n(r.cancelled)}  retries ${n(r.retries)}  executions ${n(r.executions)}`,
  );
  lines.push(
    `  throughput ${n(r.throughput_per_s)} dispatches/s end to end over ${r.duration_s.toFixed(2)} s`,
  );
  lines.push(
    latencyLine('enqueue→start', r.enqueue_to_start_ms) +
      (r.workload.rate_per_s === null
        ? '  (includes queueing: everything is submitted at once; --rate N for a paced load)'
        : ''),
  );
  if (r.enqueue_to_start_after_warmup_ms) {
    const w = r.enqueue_to_start_after_warmup_ms;
    lines.push(
      latencyLine('enqueue→start after warm-up', w) +
        `  (dispatches enqueued ${(w.warmup_ms / 1000).toFixed(1)} s or more after the first)`,
    );
  }
  lines.push(
    latencyLine('live round trip', r.live_rtt_ms) +
      `  sent ${n(r.live_rtt_ms.sent)}, delivered ${n(r.live_rtt_ms.delivered)}, not delivered ${n(r.live_rtt_ms.not_delivered)}`,
  );
  if (r.raw_nats_rtt_ms.count > 0) {
    const ratio = r.raw_nats_rtt_ms.p99 > 0 ? r.live_rtt_ms.p99 / r.raw_nats_rtt_ms.p99 : 0;
    lines.push(
      latencyLine('raw NATS request-reply', r.raw_nats_rtt_ms) +
        `  live p99 / raw p99 = ${ratio.toFixed(2)}×`,
    );
  }
  lines.push(
    latencyLine('interrupt→release', r.interrupt_release_ms) +
      `  interrupts ${n(r.interrupt_release_ms.interrupts)}, with an active run ${n(r.interrupt_release_ms.with_active_run)}, ` +
      `live Cancel delivered ${n(r.interrupt_release_ms.cancel_delivered)}`,
  );
  lines.push('');
  lines.push('  per node:');
  for (const s of r.per_node) {
    lines.push(
      `    ${s.node.padEnd(10)} executions ${n(s.executions).padStart(8)}  acked ${n(s.acked).padStart(8)}  ` +
        `retries ${n(s.retries).padStart(5)}  dead letters ${n(s.dead_letters).padStart(4)}  aborted ${n(s.aborted).padStart(4)}  ` +
        `live acks ${n(s.live_acks).padStart(5)}${s.killed ? `  KILLED (${s.in_flight_at_kill} in flight)` : ''}`,
    );
  }
  if (r.killed_node) {
    lines.push(
      `  killed ${r.killed_node.node} with SIGKILL at ${r.killed_node.at_s.toFixed(2)} s, ${r.killed_node.in_flight} executions in flight`,
    );
  }
  const peers = peersOf(r);
  if (peers.length > 0) {
    lines.push('');
    for (const b of peers) {
      lines.push(
        `  baseline ${b.name}: ${n(b.throughput_per_s)} jobs/s over ${b.duration_s.toFixed(2)} s ` +
          `(completed ${n(b.completed)}, failed ${n(b.failed)}, concurrency ${b.concurrency_per_node}/node) — ratio ${b.ratio.toFixed(2)}×`,
      );
    }
    for (const b of peers) lines.push(latencyLine(`${b.name} enqueue→start`, b.enqueue_to_start_ms));
  }
  lines.push('');
  lines.push(
    ...costLines(
      [
        { label: OUR_LABEL, cpu: r.cpu_us_per_dispatch, commands: r.redis_commands_per_dispatch },
        ...r.baselines.map((b) => ({
          label: b.name,
          cpu: b.cpu_us_per_dispatch,
          commands: b.redis_commands_per_dispatch,
        })),
      ],
      [
        ...r.cost_notes,
        ...r.baselines.flatMap((b) =>
          b.cost_notes.filter((note) => !r.cost_notes.includes(note)).map((note) => `${b.name}: ${note}`),
        ),
      ],
    ),
  );
  lines.push('');
  const inv = r.invariants;
  lines.push(
    `  invariants: lost ${inv.lost}, duplicated runs ${inv.duplicated_runs}, exclusivity violations ${inv.exclusivity_violations}, ` +
      `count mismatches ${inv.count_mismatches}, acked without execution ${inv.acked_without_execution} — ${inv.ok ? 'OK' : 'VIOLATED'}`,
  );
  for (const [kind, examples] of Object.entries(inv.examples)) {
    for (const e of examples) lines.push(`    ${kind}: ${e}`);
  }
  if (r.timed_out) lines.push('  the run timed out before every dispatch finished');
  for (const e of r.errors) lines.push(`  error: ${e}`);
  return lines.join('\n');
}

/** 0 when the run is clean; 1 on any invariant violation, a timeout or an error; 130 when interrupted. */
export function benchExitCode(
  result: Pick<BenchResult, 'invariants' | 'timed_out' | 'errors'>,
  interrupted = false,
): number {
  if (interrupted) return 130;
  return result.invariants.ok && !result.timed_out && result.errors.length === 0 ? 0 : 1;
}

/** One line saying why a run failed (for stderr next to `--json` output). */
export function failureSummary(result: Pick<BenchResult, 'invariants' | 'timed_out' | 'errors'>): string {
  const parts: string[] = [];
  const i = result.invariants;
  if (!i.ok) {
    parts.push(
      `invariants violated (lost ${i.lost}, duplicated runs ${i.duplicated_runs}, exclusivity ${i.exclusivity_violations}, ` +
        `count mismatches ${i.count_mismatches}, acked without execution ${i.acked_without_execution})`,
    );
  }
  if (result.timed_out) parts.push('timed out before every dispatch finished');
  parts.push(...result.errors);
  return parts.join('; ');
}

import { describe, expect, it } from 'vitest';
import { chartJsSource, renderReportHtml } from '../../src/bench/report-html.js';
import type { BenchResult } from '../../src/bench/results.js';
import { benchExitCode, failureSummary, formatResult, resultForJson } from '../../src/bench/results.js';
import { emptyStatusCounts } from '../../src/bench/invariants.js';

const latency = { count: 10, mean: 1, p50: 1, p90: 2, p99: 3, p999: 4, max: 5 };

function sampleResult(over: Partial<BenchResult> = {}): BenchResult {
  return {
    backend: 'redis+jetstream',
    backend_detail:
      'redis backend at redis://127.0.0.1:6379, signals jetstream, live commands over NATS at nats://127.0.0.1:4222',
    nodes: 2,
    node_mode: 'process',
    threads: 8,
    workload: {
      run_ms: 'fixed:2',
      fail_rate: 0.01,
      interrupt_rate: 0,
      live_rate: 0.1,
      rate_per_s: null,
      lease_ms: 1000,
      max_attempts: 5,
    },
    dispatches: 100,
    completed: 100,
    dead_letters: 0,
    superseded: 0,
    cancelled: 0,
    retries: 1,
    executions: 101,
    duration_s: 1.5,
    throughput_per_s: 66.7,
    enqueue_to_start_ms: latency,
    enqueue_to_start_after_warmup_ms: null,
    live_rtt_ms: { ...latency, sent: 10, delivered: 10, not_delivered: 0 },
    raw_nats_rtt_ms: { ...latency, p99: 2 },
    interrupt_release_ms: {
      ...latency,
      count: 0,
      interrupts: 0,
      with_active_run: 0,
      cancel_delivered: 0,
      timed_out: 0,
    },
    per_node: ['node-1', 'node-2'].map((node, i) => ({
      node,
      pid: 100 + i,
      executions: 50,
      acked: 50,
      retries: 0,
      dead_letters: 0,
      superseded: 0,
      cancelled: 0,
      aborted: 0,
      live_acks: 5,
      killed: i === 1,
      in_flight_at_kill: i === 1 ? 3 : 0,
    })),
    killed_node: { node: 'node-2', at_s: 0.7, in_flight: 3 },
    invariants: {
      lost: 0,
      duplicated_runs: 0,
      exclusivity_violations: 0,
      count_mismatches: 0,
      acked_without_execution: 0,
      ok: true,
      record_counts: { ...emptyStatusCounts(), Acked: 100 },
      store_counts: { ...emptyStatusCounts(), Acked: 100 },
      examples: {
        lost: [],
        duplicated_runs: [],
        exclusivity_violations: [],
        count_mismatches: [],
        acked_without_execution: [],
      },
    },
    cpu_us_per_dispatch: { redis: 300, nats: 120.5, coordinator: 80, nodes: 500 },
    redis_commands_per_dispatch: {
      total: 41.3,
      scripts: 2.4,
      script_usec_per_call: 160,
      top: [
        { command: 'zadd', per_dispatch: 7, usec_per_call: 2.1 },
        { command: 'hgetall', per_dispatch: 5.6, usec_per_call: 3 },
      ],
    },
    cost_notes: ['Redis figures are deltas of the whole server over the measured phase'],
    baselines: [],
    timed_out: false,
    errors: [],
    timeline: [
      {
        t: 1,
        completed: 60,
        terminal: 60,
        rate: 60,
        in_flight: 4,
        queued: 30,
        e2s_p50: 1,
        e2s_p99: 3,
        live_p50: 0.5,
        live_p99: 1,
        per_node: [30, 30],
      },
      {
        t: 1.5,
        completed: 100,
        terminal: 100,
        rate: 80,
        in_flight: 0,
        queued: 0,
        e2s_p50: 1,
        e2s_p99: 2,
        live_p50: 0.5,
        live_p99: 1,
        per_node: [41, 0],
      },
    ],
    ...over,
  };
}

describe('HTML report', () => {
  it('is self-contained: the chart library is inlined and nothing is loaded from elsewhere', () => {
    const html = renderReportHtml(
      sampleResult({ backend_detail: 'evil </script><script src="https://x.example/a.js"></script>' }),
    );
    expect(html.startsWith('<!doctype html>')).toBe(true);
    // The Chart.js bundle itself is in the page.
    const lib = chartJsSource();
    expect(lib.length).toBeGreaterThan(100_000);
    expect(html).toContain(lib.slice(0, 2000));
    expect(html).toContain('Chart.js v4');
    // No external resources: no element pulls a script, stylesheet, image or font from a URL.
    expect(html).not.toMatch(/<script[^>]*\ssrc\s*=/i);
    expect(html).not.toMatch(/<link[^>]*\shref\s*=/i);
    expect(html).not.toMatch(/<(img|iframe|source|video|audio)\b/i);
    expect(html).not.toMatch(/url\(\s*['"]?(https?:)?\/\//i);
    expect(html).not.toMatch(/@import/i);
    // Every http(s) URL in the page is inert text (the bundle's license banner, escaped user data).
    const urls = new Set(html.match(/https?:\/\/[^\s"'<>)&\\]+/g) ?? []);
    expect([...urls].sort()).toEqual([
      'https://github.com/kurkle/color#readme',
      'https://www.chartjs.org',
      'https://x.example/a.js',
    ]);
    // User-controlled text is escaped, so it cannot close the script or inject markup.
    expect(html).not.toContain('evil </script>');
    expect(html).toContain('evil &lt;/script&gt;');
    // Exactly three chart canvases and the embedded data.
    expect(html.match(/<canvas /g)).toHaveLength(3);
    const json = /<script type="application\/json" id="bench-data">([\s\S]*?)<\/script>/.exec(html)?.[1];
    expect(json).toBeDefined();
    const data = JSON.parse(json!) as { timeline: unknown[]; result: { backend: string } };
    expect(data.timeline).toHaveLength(2);
    expect(data.result.backend).toBe('redis+jetstream');
  });

  it('includes the baseline when there is one', () => {
    const baseline = {
      name: 'bullmq' as const,
      dispatches: 100,
      completed: 100,
      failed: 0,
      duration_s: 2,
      throughput_per_s: 50,
      ratio: 1.33,
      enqueue_to_start_ms: latency,
      concurrency_per_node: 4,
      timeline: [],
    };
    const html = renderReportHtml(sampleResult({ baseline }));
    expect(html).toContain('ratio 1.33×');
    expect(html).toContain('BullMQ baseline');
  });

  it('shows every peer, with its cost, and our cost', () => {
    const html = renderReportHtml(sampleResult(twoPeers()));
    expect(html).toContain('bullmq: 50.0 jobs/s over 2.00 s — ratio 1.33×');
    expect(html).toContain('groupmq: 80.0 jobs/s over 1.25 s — ratio 0.83×');
    expect(html).toContain('BullMQ baseline');
    expect(html).toContain('GroupMQ baseline');
    expect(html).toContain('groupmq enqueue→start');
    expect(html).toMatch(/CPU per dispatch<\/th><td>redis 300\.0 µs, nats 120\.5 µs, coordinator 80\.0 µs/);
    expect(html).toContain('groupmq CPU per dispatch');
  });
});

/** A result with two peers: BullMQ (first, so also `baseline`) and GroupMQ. */
function twoPeers(): Pick<BenchResult, 'baseline' | 'baselines'> {
  const peer = (name: 'bullmq' | 'groupmq', throughput: number, ratio: number) => ({
    name,
    dispatches: 100,
    completed: 100,
    failed: 0,
    duration_s: 100 / throughput,
    throughput_per_s: throughput,
    ratio,
    enqueue_to_start_ms: latency,
    concurrency_per_node: 4,
    timeline: [],
    cpu_us_per_dispatch: { redis: 90, nats: null, coordinator: 40, nodes: 200 },
    redis_commands_per_dispatch: {
      total: 30,
      scripts: 2,
      script_usec_per_call: 45.5,
      top: [{ command: 'hset', per_dispatch: 5, usec_per_call: 1.5 }],
    },
    cost_notes: ['Redis figures are deltas of the whole server over the measured phase', 'peer note'],
  });
  const bullmq = peer('bullmq', 50, 1.33);
  const { cpu_us_per_dispatch: _c, redis_commands_per_dispatch: _r, cost_notes: _n, ...baseline } = bullmq;
  return { baseline, baselines: [bullmq, peer('groupmq', 80, 0.83)] };
}

describe('result rendering', () => {
  it('--json omits the timelines and keeps the required fields', () => {
    const r = sampleResult();
    const json = resultForJson(r);
    expect(json).not.toHaveProperty('timeline');
    expect(json).toMatchObject({
      backend: 'redis+jetstream',
      nodes: 2,
      dispatches: 100,
      completed: 100,
      throughput_per_s: 66.7,
      enqueue_to_start_ms: { p50: 1, p99: 3 },
      live_rtt_ms: { p50: 1, p99: 3 },
      invariants: { lost: 0, duplicated_runs: 0, exclusivity_violations: 0 },
    });
  });

  it('--json has `baselines` with each peer and its cost, and `baseline` (the first) as before', () => {
    expect(resultForJson(sampleResult())).toMatchObject({ baselines: [] });
    expect(resultForJson(sampleResult())).not.toHaveProperty('baseline');
    const json = resultForJson(sampleResult(twoPeers())) as {
      baseline: Record<string, unknown>;
      baselines: Record<string, unknown>[];
    };
    expect(Object.keys(json.baseline).sort()).toEqual(
      [
        'name',
        'dispatches',
        'completed',
        'failed',
        'duration_s',
        'throughput_per_s',
        'ratio',
        'enqueue_to_start_ms',
        'concurrency_per_node',
      ].sort(),
    );
    expect(json.baselines).toHaveLength(2);
    expect(json.baselines[1]).toMatchObject({
      name: 'groupmq',
      throughput_per_s: 80,
      ratio: 0.83,
      enqueue_to_start_ms: { p50: 1 },
      cpu_us_per_dispatch: { redis: 90, nats: null, coordinator: 40, nodes: 200 },
      redis_commands_per_dispatch: { total: 30, scripts: 2 },
    });
    for (const b of json.baselines) expect(b).not.toHaveProperty('timeline');
    expect(resultForJson(sampleResult())).toMatchObject({
      cpu_us_per_dispatch: { redis: 300, nats: 120.5, coordinator: 80, nodes: 500 },
      redis_commands_per_dispatch: { total: 41.3, scripts: 2.4, script_usec_per_call: 160 },
    });
  });

  it('the text summary has one line per peer and a cost line for us and each peer', () => {
    const text = formatResult(sampleResult(twoPeers()));
    expect(text.match(/^ {2}baseline /gm)).toHaveLength(2);
    expect(text).toMatch(/baseline bullmq: 50 jobs\/s over 2\.00 s .* ratio 1\.33×/);
    expect(text).toMatch(/baseline groupmq: 80 jobs\/s over 1\.25 s .* ratio 0\.83×/);
    expect(text).toMatch(/groupmq enqueue→start +p50 1\.00 ms/);
    expect(text).toMatch(/^ {4}awaken-mailbox +300\.0 +120\.5 +80\.0 +500\.0 +1000\.5$/m);
    expect(text).toMatch(/^ {4}bullmq +90\.0 +– +40\.0 +200\.0 +330\.0$/m);
    expect(text).toMatch(/^ {4}groupmq +90\.0 +– +40\.0 +200\.0 +330\.0$/m);
    expect(text).toMatch(
      /^ {4}awaken-mailbox +41\.30 in all, 2\.40 scripts at 160\.0 µs; zadd 7\.00, hgetall 5\.60$/m,
    );
    expect(text).toMatch(/^ {4}groupmq +30\.00 in all, 2\.00 scripts at 45\.5 µs; hset 5\.00$/m);
    // A note the peers share with our run is printed once; their own notes name them.
    expect(text.match(/deltas of the whole server over the measured phase$/gm)).toHaveLength(1);
    expect(text).toContain('note: bullmq: peer note');
    expect(text).toContain('note: groupmq: peer note');
  });

  it('the text summary has the cost line without peers too', () => {
    const text = formatResult(sampleResult());
    expect(text).toMatch(/CPU per dispatch, µs/);
    expect(text).toMatch(/^ {4}awaken-mailbox +300\.0 +120\.5 +80\.0 +500\.0 +1000\.5$/m);
    expect(text).not.toMatch(/baseline/);
  });

  it('the text summary names the kill and the verdict', () => {
    const text = formatResult(sampleResult());
    expect(text).toContain('killed node-2 with SIGKILL');
    expect(text).toMatch(/invariants: .* OK/);
    expect(text).toMatch(/raw NATS request-reply .* live p99 \/ raw p99 = 1\.50×/);
    expect(text).not.toMatch(/after warm-up/);
  });

  it('with --warmup the text and the JSON carry the steady-state enqueue→start', () => {
    const r = sampleResult({
      enqueue_to_start_after_warmup_ms: { ...latency, p99: 2.5, warmup_ms: 3000 },
    });
    expect(formatResult(r)).toMatch(
      /enqueue→start after warm-up .*2\.5.*enqueued 3\.0 s or more after the first/,
    );
    expect(resultForJson(r)).toMatchObject({
      enqueue_to_start_after_warmup_ms: { p99: 2.5, warmup_ms: 3000 },
    });
  });
});

describe('bench exit code', () => {
  it('is 0 for a clean run and 1 for any violation, timeout or error', () => {
    expect(benchExitCode(sampleResult())).toBe(0);
    const clean = sampleResult().invariants;
    for (const kind of [
      'lost',
      'duplicated_runs',
      'exclusivity_violations',
      'count_mismatches',
      'acked_without_execution',
    ] as const) {
      const violated = sampleResult({ invariants: { ...clean, [kind]: 1, ok: false } });
      expect(benchExitCode(violated)).toBe(1);
      expect(failureSummary(violated)).toMatch(/invariants violated/);
      expect(formatResult(violated)).toMatch(/VIOLATED/);
    }
    expect(benchExitCode(sampleResult({ timed_out: true }))).toBe(1);
    expect(benchExitCode(sampleResult({ errors: ['node-1: start failed'] }))).toBe(1);
    expect(failureSummary(sampleResult({ errors: ['node-1: start failed'] }))).toBe('node-1: start failed');
    expect(benchExitCode(sampleResult(), true)).toBe(130);
  });
});

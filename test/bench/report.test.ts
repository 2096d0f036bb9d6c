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
});

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

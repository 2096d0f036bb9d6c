/**
 * `--report FILE.html`: one self-contained page (no network access needed to open it) with the run's summary and
 * charts drawn by Chart.js, whose UMD bundle is read from node_modules at runtime and inlined into the page.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { LatencySummary } from './histogram.js';
import type { BenchResult } from './results.js';
import { BASELINE_TITLES, cpuSummary, peersOf, resultForJson } from './results.js';

/** The Chart.js UMD bundle. Its package does not export the dist path, so it is found next to the main entry. */
export function chartJsSource(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('chart.js'); // …/chart.js/dist/chart.cjs
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

const escapeHtml = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/** JSON safe inside a <script> element: no `</script>`, no `<!--`. */
const scriptJson = (value: unknown): string =>
  JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** Inline JavaScript must not contain a closing script tag. */
const scriptSafe = (js: string): string => js.replace(/<\/(script)/gi, '<\\/$1');

function latencyRow(label: string, s: LatencySummary): string {
  const cells =
    s.count === 0
      ? '<td colspan="6">none</td>'
      : [s.p50, s.p90, s.p99, s.p999, s.max].map((v) => `<td>${v.toFixed(3)}</td>`).join('') +
        `<td>${s.count}</td>`;
  return `<tr><th>${escapeHtml(label)}</th>${cells}</tr>`;
}

function summaryHtml(r: BenchResult): string {
  const inv = r.invariants;
  const rows: [string, string][] = [
    ['backend', `${r.backend} — ${r.backend_detail}`],
    [
      'nodes',
      `${r.nodes} (${r.node_mode === 'process' ? 'separate processes' : 'in-process, one shared memory store'})`,
    ],
    ['threads', String(r.threads)],
    [
      'workload',
      `run-ms ${r.workload.run_ms}, fail-rate ${r.workload.fail_rate}, interrupt-rate ${r.workload.interrupt_rate}, ` +
        `live-rate ${r.workload.live_rate}, lease ${r.workload.lease_ms} ms, ` +
        (r.workload.rate_per_s !== null
          ? `submit rate ${r.workload.rate_per_s}/s`
          : 'submit as fast as possible'),
    ],
    [
      'dispatches',
      `${r.dispatches} submitted, ${r.completed} completed, ${r.dead_letters} dead letters, ${r.superseded} superseded, ${r.cancelled} cancelled, ${r.retries} retries`,
    ],
    [
      'throughput',
      `${r.throughput_per_s.toFixed(1)} dispatches/s end to end over ${r.duration_s.toFixed(2)} s`,
    ],
    [
      'live commands',
      `${r.live_rtt_ms.sent} sent, ${r.live_rtt_ms.delivered} delivered, ${r.live_rtt_ms.not_delivered} not delivered`,
    ],
    [
      'interrupts',
      `${r.interrupt_release_ms.interrupts} (${r.interrupt_release_ms.with_active_run} with an active run)`,
    ],
    [
      'invariants',
      `${inv.ok ? 'OK' : 'VIOLATED'} — lost ${inv.lost}, duplicated runs ${inv.duplicated_runs}, exclusivity violations ${inv.exclusivity_violations}, ` +
        `count mismatches ${inv.count_mismatches}, acked without execution ${inv.acked_without_execution}`,
    ],
  ];
  if (r.killed_node)
    rows.push([
      'killed node',
      `${r.killed_node.node} at ${r.killed_node.at_s.toFixed(2)} s, ${r.killed_node.in_flight} in flight`,
    ]);
  for (const b of peersOf(r)) {
    rows.push([
      'baseline',
      `${b.name}: ${b.throughput_per_s.toFixed(1)} jobs/s over ${b.duration_s.toFixed(2)} s — ratio ${b.ratio.toFixed(2)}×`,
    ]);
  }
  rows.push(['CPU per dispatch', cpuSummary(r.cpu_us_per_dispatch)]);
  for (const b of r.baselines) rows.push([`${b.name} CPU per dispatch`, cpuSummary(b.cpu_us_per_dispatch)]);
  if (r.redis_commands_per_dispatch) {
    const c = r.redis_commands_per_dispatch;
    rows.push([
      'Redis commands per dispatch',
      `${c.total.toFixed(2)} in all, ${c.scripts.toFixed(2)} scripts; ` +
        c.top.map((t) => `${t.command} ${t.per_dispatch.toFixed(2)}`).join(', '),
    ]);
  }
  for (const note of r.cost_notes) rows.push(['cost note', note]);
  const examples = Object.entries(inv.examples).flatMap(([kind, list]) =>
    list.map((e) => `<li>${escapeHtml(kind)}: ${escapeHtml(e)}</li>`),
  );
  return (
    `<table class="kv">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>` +
    (examples.length ? `<h3>Invariant violations</h3><ul>${examples.join('')}</ul>` : '') +
    `<h3>Latency (ms)</h3><table class="lat"><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>count</th></tr>` +
    latencyRow('enqueue→start', r.enqueue_to_start_ms) +
    latencyRow('live round trip', r.live_rtt_ms) +
    (r.raw_nats_rtt_ms.count > 0 ? latencyRow('raw NATS request-reply', r.raw_nats_rtt_ms) : '') +
    latencyRow('interrupt→release', r.interrupt_release_ms) +
    peersOf(r)
      .map((b) => latencyRow(`${b.name} enqueue→start`, b.enqueue_to_start_ms))
      .join('') +
    `</table>` +
    `<h3>Per node</h3><table class="lat"><tr><th>node</th><th>pid</th><th>executions</th><th>acked</th><th>retries</th><th>dead letters</th><th>aborted</th><th>live acks</th><th></th></tr>` +
    r.per_node
      .map(
        (s) =>
          `<tr><th>${escapeHtml(s.node)}</th><td>${s.pid ?? '-'}</td><td>${s.executions}</td><td>${s.acked}</td><td>${s.retries}</td>` +
          `<td>${s.dead_letters}</td><td>${s.aborted}</td><td>${s.live_acks}</td><td>${s.killed ? `killed (${s.in_flight_at_kill} in flight)` : ''}</td></tr>`,
      )
      .join('') +
    `</table>`
  );
}

/** Draws the three charts from the embedded data; runs in the browser. */
const PAGE_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('bench-data').textContent);
  var r = data.result, tl = data.timeline, peers = data.baselineTimelines;
  var palette = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];
  var peerColors = [palette[1], palette[5], palette[6], palette[7]];
  var xy = function (rows, key) { return rows.map(function (s) { return { x: s.t, y: s[key] }; }); };
  var linear = { type: 'linear', title: { display: true, text: 'seconds since start' } };
  var throughput = [{ label: 'awaken-mailbox (' + r.backend + ')', data: xy(tl, 'rate'), borderColor: palette[0], pointRadius: 0 }];
  peers.forEach(function (p, i) {
    throughput.push({ label: p.label, data: xy(p.timeline, 'rate'), borderColor: peerColors[i % peerColors.length], pointRadius: 0 });
  });
  new Chart(document.getElementById('throughput'), {
    type: 'line', data: { datasets: throughput },
    options: { animation: false, scales: { x: linear, y: { beginAtZero: true, title: { display: true, text: 'completed / s' } } } }
  });
  var lat = [
    { label: 'enqueue→start p50', data: xy(tl, 'e2s_p50'), borderColor: palette[0], pointRadius: 0 },
    { label: 'enqueue→start p99', data: xy(tl, 'e2s_p99'), borderColor: palette[3], pointRadius: 0 },
    { label: 'live round trip p50', data: xy(tl, 'live_p50'), borderColor: palette[2], pointRadius: 0 },
    { label: 'live round trip p99', data: xy(tl, 'live_p99'), borderColor: palette[4], pointRadius: 0 }
  ];
  peers.forEach(function (p, i) {
    lat.push({ label: p.label + ' enqueue→start p99', data: xy(p.timeline, 'e2s_p99'), borderColor: peerColors[i % peerColors.length], pointRadius: 0 });
  });
  new Chart(document.getElementById('latency'), {
    type: 'line', data: { datasets: lat },
    options: { animation: false, scales: { x: linear, y: { beginAtZero: true, title: { display: true, text: 'ms (per 1 s interval)' } } } }
  });
  var nodes = r.per_node.map(function (n, i) {
    return { label: n.node + (n.killed ? ' (killed)' : ''), data: tl.map(function (s) { return { x: s.t, y: s.per_node[i] || 0 }; }),
             backgroundColor: palette[i % palette.length], borderColor: palette[i % palette.length] };
  });
  new Chart(document.getElementById('nodes'), {
    type: 'bar', data: { datasets: nodes },
    options: { animation: false, scales: { x: Object.assign({ stacked: true }, linear), y: { stacked: true, beginAtZero: true, title: { display: true, text: 'executions started / interval' } } } }
  });
})();
`;

export function renderReportHtml(result: BenchResult, generatedAt: Date = new Date()): string {
  const data = {
    result: resultForJson(result),
    timeline: result.timeline,
    baselineTimelines: peersOf(result).map((b) => ({
      label: `${BASELINE_TITLES[b.name]} baseline`,
      timeline: b.timeline,
    })),
  };
  const title = `awaken-mailbox bench — ${result.backend}, ${result.nodes} nodes, ${result.dispatches} dispatches`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #111; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
  table { border-collapse: collapse; margin: .5rem 0; } th, td { padding: .2rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: left; }
  table.lat td { text-align: right; font-variant-numeric: tabular-nums; }
  .ok { color: #15803d; } .bad { color: #b91c1c; }
  .chart { position: relative; height: 320px; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>Generated ${escapeHtml(generatedAt.toISOString())}. Invariants:
<strong class="${result.invariants.ok ? 'ok' : 'bad'}">${result.invariants.ok ? 'all hold' : 'VIOLATED'}</strong>.</p>
${summaryHtml(result)}
<h2>Throughput over time</h2><div class="chart"><canvas id="throughput"></canvas></div>
<h2>Latency percentiles over time</h2><div class="chart"><canvas id="latency"></canvas></div>
<h2>Per-node load</h2><div class="chart"><canvas id="nodes"></canvas></div>
<script type="application/json" id="bench-data">${scriptJson(data)}</script>
<script>${scriptSafe(chartJsSource())}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

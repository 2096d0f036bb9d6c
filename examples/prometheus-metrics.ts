/**
 * awaken-mailbox metrics on a Prometheus endpoint. The library records through `@opentelemetry/api` only; the
 * application installs the SDK with the exporter it wants — here Prometheus, serving `/metrics` on port 9464.
 * Install the SDK BEFORE creating stores and Mailboxes: they instrument themselves when they are created.
 *
 *   npx tsx examples/prometheus-metrics.ts                                # in-memory store
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/prometheus-metrics.ts
 *   curl -s localhost:9464/metrics | grep awaken_mailbox                  # while it runs (KEEP_RUNNING=1)
 *
 * Packages: `@opentelemetry/sdk-metrics` and `@opentelemetry/exporter-prometheus` (the application's choice;
 * awaken-mailbox itself depends on `@opentelemetry/api` only).
 */
import { randomBytes } from 'node:crypto';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
// In an application: `from 'awaken-mailbox'`.
import { Mailbox, MemoryMailboxStore, createMailboxStore } from '../src/index.js';
import type { MailboxStore } from '../src/index.js';

const PORT = Number(process.env.METRICS_PORT ?? 9464);

// 1. The SDK, with a Prometheus reader (it starts an HTTP server on PORT), installed globally.
const exporter = new PrometheusExporter({ port: PORT });
const provider = new MeterProvider({ readers: [exporter] });
metrics.setGlobalMeterProvider(provider);

// 2. Then the store and the Mailbox: they see the SDK and record.
const redisUrl = process.env.REDIS_URL;
const namespace = `example-metrics-${randomBytes(3).toString('hex')}`;
const store: MailboxStore & { destroyNamespace?: () => Promise<void> } = redisUrl
  ? await createMailboxStore({ redis: redisUrl, namespace })
  : new MemoryMailboxStore();

const mailbox = new Mailbox({
  store,
  executor: async (ctx) => {
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
    // Every fifth run fails for good: dead letters show up in the metrics too.
    return ctx.dispatch.run_id.endsWith('-4')
      ? { kind: 'fail', error: 'example failure' }
      : { kind: 'completed' };
  },
});
let ended = 0;
mailbox.on('completed', () => ended++);
mailbox.on('deadLettered', () => ended++);
await mailbox.start();

const RUNS = 50;
for (let i = 0; i < RUNS; i++) {
  await mailbox.submitBackground({ threadId: `thread-${i % 5}`, runId: `run-${i}-${i % 5}` });
}
while (ended < RUNS) await new Promise((resolve) => setTimeout(resolve, 20));

// 3. What a Prometheus server would scrape.
const scrape = await fetch(`http://127.0.0.1:${PORT}/metrics`);
const text = await scrape.text();
const lines = text.split('\n').filter((l) => l.startsWith('awaken_mailbox_') && !l.includes('_bucket{'));
console.log(lines.join('\n'));

if (process.env.KEEP_RUNNING !== '1') {
  await mailbox.stop();
  await store.destroyNamespace?.();
  await store.close();
  await provider.shutdown();
}

/**
 * Live-steering round trip vs raw NATS request-reply on the same server (design.md §5: live round trip p99
 * ≤ 1.5× raw NATS request-reply p99).
 *
 *   npm run bench:live -- [--url nats://127.0.0.1:4222] [--seconds 5] [--warmup 1] [--in-flight 1,64] [--json]
 *
 * Each scenario uses two connections (producer and consumer, as two nodes would) and keeps `in-flight`
 * requests outstanding for `seconds`, recording every round trip in an HDR histogram (microseconds):
 * - raw:          nc.request → a subscriber that replies with an empty body;
 * - live json:    NatsLiveChannel.deliverLive → a live stream that acks every command (JSON payload);
 * - live msgpack: the same with the msgpack producer codec.
 * The command is a small `Messages` payload, the size of a typical steering message.
 */
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { Command } from 'commander';
import { build, type Histogram } from 'hdr-histogram-js';
import { encodeLiveRunCommand } from '../src/contract/codec.js';
import type { LiveRunCommand } from '../src/contract/types.js';
import { NatsLiveChannel, liveSubjectPrefix } from '../src/live/nats-live.js';

interface Options {
  url: string;
  seconds: number;
  warmup: number;
  inFlight: number[];
  scenarios: string[];
  noAsyncTraces: boolean;
  json: boolean;
}

interface Result {
  scenario: string;
  inFlight: number;
  count: number;
  seconds: number;
  ratePerSec: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

const COMMAND: LiveRunCommand = {
  Messages: [
    {
      id: '01906a6e-3c1f-7b2a-9f00-1a2b3c4d5e6f',
      role: 'user',
      content: [{ type: 'text', text: 'please also check the staging logs' }],
    },
  ],
};

function parseOptions(): Options {
  const program = new Command()
    .name('bench-live')
    .option('--url <url>', 'NATS server', process.env.NATS_URL ?? 'nats://127.0.0.1:4222')
    .option('--seconds <n>', 'measured seconds per scenario', '5')
    .option('--warmup <n>', 'warm-up seconds per scenario', '1')
    .option('--in-flight <list>', 'comma-separated concurrency levels', '1,64')
    .option('--scenarios <list>', 'comma-separated subset of raw,json,msgpack', 'raw,json,msgpack')
    .option('--no-async-traces', 'connect with noAsyncTraces (nats.js skips capturing a stack per request)')
    .option('--json', 'print results as JSON', false)
    .parse();
  const o = program.opts<{
    url: string;
    seconds: string;
    warmup: string;
    inFlight: string;
    scenarios: string;
    asyncTraces: boolean;
    json: boolean;
  }>();
  const positive = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  return {
    url: o.url,
    seconds: positive('seconds', o.seconds),
    warmup: Number(o.warmup) >= 0 ? Number(o.warmup) : 1,
    inFlight: o.inFlight.split(',').map((s) => Math.floor(positive('in-flight', s))),
    scenarios: o.scenarios.split(',').map((s) => s.trim()),
    noAsyncTraces: !o.asyncTraces,
    json: o.json,
  };
}

/** Keep `inFlight` calls of `op` outstanding until `ms` passed; record each completion's latency. */
async function drive(
  op: () => Promise<unknown>,
  inFlight: number,
  ms: number,
  hist: Histogram | null,
): Promise<number> {
  const deadline = performance.now() + ms;
  let count = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await op();
      hist?.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      count++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count;
}

async function measure(
  scenario: string,
  op: () => Promise<unknown>,
  inFlight: number,
  opts: Options,
): Promise<Result> {
  await drive(op, inFlight, opts.warmup * 1000, null);
  const hist = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const started = performance.now();
  const count = await drive(op, inFlight, opts.seconds * 1000, hist);
  const seconds = (performance.now() - started) / 1000;
  const result: Result = {
    scenario,
    inFlight,
    count,
    seconds: round(seconds, 2),
    ratePerSec: Math.round(count / seconds),
    p50Us: hist.getValueAtPercentile(50),
    p99Us: hist.getValueAtPercentile(99),
    p999Us: hist.getValueAtPercentile(99.9),
    maxUs: hist.maxValue,
  };
  hist.destroy();
  return result;
}

const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const opts = parseOptions();
  const common = { servers: opts.url, noAsyncTraces: opts.noAsyncTraces };
  const producerNc: NatsConnection = await connect({ ...common, name: 'bench-live-producer' });
  const consumerNc: NatsConnection = await connect({ ...common, name: 'bench-live-consumer' });
  const prefix = liveSubjectPrefix(`bench-${randomBytes(4).toString('hex')}`);
  const rawSubject = `${prefix}.raw`;
  const payload = new TextEncoder().encode(encodeLiveRunCommand(COMMAND));

  // Raw request-reply: reply with an empty body, exactly what a live ack sends.
  const rawSub = consumerNc.subscribe(rawSubject, { callback: (_err, msg) => void msg.respond() });
  // Live consumer: one stream, acking every command as a run forwarder would.
  const consumer = new NatsLiveChannel({ nc: consumerNc, subjectPrefix: prefix });
  const stream = await consumer.openLiveChannel('bench-thread');
  const acking = (async () => {
    for await (const entry of stream) await entry.receipt.ack();
  })();
  await consumerNc.flush();

  const json = new NatsLiveChannel({ nc: producerNc, subjectPrefix: prefix });
  const msgpack = new NatsLiveChannel({ nc: producerNc, subjectPrefix: prefix, codec: 'msgpack' });
  const expectDelivered = async (p: Promise<string>): Promise<void> => {
    const outcome = await p;
    if (outcome !== 'Delivered') throw new Error(`live delivery returned ${outcome}`);
  };
  const all: [string, string, () => Promise<unknown>][] = [
    ['raw', 'raw request-reply', () => producerNc.request(rawSubject, payload, { timeout: 5000 })],
    ['json', 'live deliver (json)', () => expectDelivered(json.deliverLive('bench-thread', COMMAND))],
    [
      'msgpack',
      'live deliver (msgpack)',
      () => expectDelivered(msgpack.deliverLive('bench-thread', COMMAND)),
    ],
  ];
  const scenarios = all
    .filter(([key]) => opts.scenarios.includes(key))
    .map(([, name, op]) => [name, op] as const);
  if (!opts.json) console.log(`NATS ${redact(opts.url)}, noAsyncTraces=${opts.noAsyncTraces}`);

  const results: Result[] = [];
  for (const inFlight of opts.inFlight) {
    for (const [name, op] of scenarios) {
      const r = await measure(name, op, inFlight, opts);
      results.push(r);
      if (!opts.json) {
        console.log(
          `${name.padEnd(24)} in-flight ${String(inFlight).padStart(3)}  ${String(r.ratePerSec).padStart(7)} req/s  ` +
            `p50 ${fmt(r.p50Us)}  p99 ${fmt(r.p99Us)}  p99.9 ${fmt(r.p999Us)}  max ${fmt(r.maxUs)}  (n=${r.count})`,
        );
      }
    }
    const raw = results.find((r) => r.inFlight === inFlight && r.scenario === 'raw request-reply');
    const live = results.find((r) => r.inFlight === inFlight && r.scenario === 'live deliver (json)');
    if (raw && live && !opts.json) {
      console.log(
        `  live/raw at in-flight ${inFlight}: p99 ×${round(live.p99Us / raw.p99Us, 2)} (target ≤ 1.5), ` +
          `rate ×${round(live.ratePerSec / raw.ratePerSec, 2)}`,
      );
    }
  }
  if (opts.json) {
    console.log(
      JSON.stringify({ url: redact(opts.url), noAsyncTraces: opts.noAsyncTraces, results }, null, 2),
    );
  }

  rawSub.unsubscribe();
  await json.close();
  await msgpack.close();
  await consumer.close();
  await acking;
  await producerNc.close();
  await consumerNc.close();
}

const fmt = (us: number): string => `${(us / 1000).toFixed(3)} ms`;
const redact = (url: string): string => url.replace(/\/\/[^/@]*@/, '//***@');

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

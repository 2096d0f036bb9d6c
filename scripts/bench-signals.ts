/**
 * Dispatch-signal transports: throughput and wake-up latency, next to raw JetStream on the same server.
 *
 *   npm run bench:signals -- [--nats nats://127.0.0.1:4222] [--redis redis://127.0.0.1:6379] [--count 20000]
 *                            [--pullers 2] [--batch 64] [--samples 1000] [--rate 500] [--scenarios …] [--json]
 *
 * Throughput (signals/s, publish → pull → ack): one producer publishes `count` signals in chunks of 256 while
 * `pullers` transports (own connections, as separate nodes) pull `batch` at a time and ack every signal;
 * the clock runs from the first publish to the last ack.
 *   - jetstream / redis-streams: our transports (`publish`, `pull`, `receipt.ack`).
 *   - raw jetstream: nats.js idiomatic API on the same server: pipelined `js.publish` (256 in flight) and
 *     `consumer.consume()` with `msg.ack()` — the baseline design.md §5 quotes (~13k msgs/s).
 * Wake-up latency (publish → pull returning it): pullers idle in the signal loop's `pull(32, 500 ms)`; one
 * signal is published every 1/rate s and its latency recorded when a pull returns it (HDR, µs).
 *   - store jetstream / store redis-streams: `createMailboxStore` → `enqueue` → `pullDispatchSignals`
 *     (includes the record write and the signal filter's record load).
 *   - raw jetstream: core publish → `consumer.consume()` callback.
 * Every run uses fresh namespaces and deletes them afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages } from '@nats-io/jetstream';
import { Command } from 'commander';
import { build, type Histogram } from 'hdr-histogram-js';
import { queuedDispatch } from '../src/contract/helpers.js';
import { createMailboxStore, redisKeys } from '../src/redis/index.js';
import { createJetStreamSignals } from '../src/signals/jetstream.js';
import { createRedisStreamsSignals } from '../src/signals/redis-streams.js';
import type { RawSignal, SignalRef, SignalTransport } from '../src/signals/transport.js';

type Transport = SignalTransport & { destroy(): Promise<void> };

interface Options {
  nats: string;
  redis: string;
  count: number;
  pullers: number;
  batch: number;
  samples: number;
  rate: number;
  scenarios: string[];
  json: boolean;
}

interface ThroughputResult {
  kind: 'throughput';
  scenario: string;
  count: number;
  seconds: number;
  perSec: number;
}

interface LatencyResult {
  kind: 'latency';
  scenario: string;
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

const ALL = [
  'tput-raw-js',
  'tput-jetstream',
  'tput-redis-streams',
  'lat-raw-js',
  'lat-jetstream',
  'lat-redis-streams',
  'lat-store-jetstream',
  'lat-store-redis-streams',
];

function parseOptions(): Options {
  const program = new Command()
    .name('bench-signals')
    .option('--nats <url>', 'NATS server with JetStream', process.env.NATS_URL ?? 'nats://127.0.0.1:4222')
    .option('--redis <url>', 'Redis server', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--count <n>', 'signals per throughput scenario', '20000')
    .option('--pullers <n>', 'concurrent pullers (one connection each)', '2')
    .option('--batch <n>', 'max signals per pull in the throughput runs', '64')
    .option('--samples <n>', 'signals per latency scenario', '1000')
    .option('--rate <n>', 'signals per second in the latency scenarios', '500')
    .option('--scenarios <list>', `comma-separated subset of ${ALL.join(',')}`, ALL.join(','))
    .option('--json', 'print results as JSON', false)
    .parse();
  const o = program.opts<Record<string, string | boolean>>();
  const int = (name: string): number => {
    const n = Number(o[name]);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
    return n;
  };
  return {
    nats: String(o.nats),
    redis: String(o.redis),
    count: int('count'),
    pullers: int('pullers'),
    batch: int('batch'),
    samples: int('samples'),
    rate: int('rate'),
    scenarios: String(o.scenarios)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
    json: o.json === true,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));
const ns = (label: string): string => `bench-${label}-${randomBytes(3).toString('hex')}`;

function histogram(): Histogram {
  return build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

function latencyResult(scenario: string, h: Histogram): LatencyResult {
  const ms = (us: number): number => Math.round(us) / 1000;
  const r: LatencyResult = {
    kind: 'latency',
    scenario,
    count: h.totalCount,
    p50Ms: ms(h.getValueAtPercentile(50)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
  h.destroy();
  return r;
}

/** Transports of one namespace, each on its own connection; `cleanup` destroys the namespace. */
interface Fleet {
  producer: Transport;
  pullers: Transport[];
  cleanup(): Promise<void>;
}

async function jetstreamFleet(opts: Options, n: number): Promise<Fleet> {
  const namespace = ns('js');
  const conns: NatsConnection[] = [];
  const open = async (): Promise<Transport> => {
    const nc = await connect({ servers: opts.nats });
    conns.push(nc);
    return createJetStreamSignals({ nc, namespace });
  };
  const producer = await open();
  const pullers: Transport[] = [];
  for (let i = 0; i < n; i++) pullers.push(await open());
  return {
    producer,
    pullers,
    async cleanup() {
      for (const p of pullers) await p.close();
      await producer.destroy();
      for (const nc of conns) await nc.close();
    },
  };
}

async function redisFleet(opts: Options, n: number): Promise<Fleet> {
  const namespace = ns('rs');
  const conns: Redis[] = [];
  const open = async (i: number): Promise<Transport> => {
    const redis = new Redis(opts.redis);
    conns.push(redis);
    return createRedisStreamsSignals({ redis, keys: redisKeys(namespace), consumerName: `bench-${i}` });
  };
  const producer = await open(0);
  const pullers: Transport[] = [];
  for (let i = 0; i < n; i++) pullers.push(await open(i + 1));
  return {
    producer,
    pullers,
    async cleanup() {
      for (const p of pullers) await p.close();
      await producer.destroy();
      for (const r of conns) await r.quit();
    },
  };
}

/** Producer publishes `count` signals in chunks; pullers pull and ack until all are acked. */
async function transportThroughput(scenario: string, fleet: Fleet, opts: Options): Promise<ThroughputResult> {
  let acked = 0;
  let done = false;
  const started = performance.now();
  const loops = fleet.pullers.map(async (p) => {
    while (!done) {
      const batch = await p.pull(opts.batch, 500);
      await Promise.all(batch.map((s) => s.receipt.ack()));
      acked += batch.length;
      if (acked >= opts.count) done = true;
    }
  });
  const chunk = 256;
  for (let i = 0; i < opts.count; i += chunk) {
    const refs: SignalRef[] = [];
    for (let j = i; j < Math.min(opts.count, i + chunk); j++) {
      refs.push({
        thread_id: `thread-${j % 1000}`,
        dispatch_id: `0190f0aa-0000-7000-8000-${String(j).padStart(12, '0')}`,
      });
    }
    await fleet.producer.publish(refs);
    await yieldNow();
  }
  const guard = setTimeout(() => (done = true), 120_000);
  await Promise.all(loops);
  clearTimeout(guard);
  const seconds = (performance.now() - started) / 1000;
  return {
    kind: 'throughput',
    scenario,
    count: acked,
    seconds: round(seconds, 2),
    perSec: Math.round(acked / seconds),
  };
}

/** Raw nats.js: pipelined js.publish and consumer.consume() with msg.ack(), on a fresh stream. */
async function rawJetStream(
  opts: Options,
  body: (ctx: {
    pub: NatsConnection;
    subs: ConsumerMessages[];
    subject: (i: number) => string;
  }) => Promise<void>,
): Promise<void> {
  const name = `BENCH_RAW_${randomBytes(3).toString('hex')}`;
  const prefix = name.toLowerCase();
  const admin = await connect({ servers: opts.nats });
  const jsm = await jetstreamManager(admin);
  await jsm.streams.add({
    name,
    subjects: [`${prefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(name, {
    durable_name: 'w',
    ack_policy: AckPolicy.Explicit,
    filter_subject: `${prefix}.>`,
  });
  const conns: NatsConnection[] = [];
  const subs: ConsumerMessages[] = [];
  try {
    for (let i = 0; i < opts.pullers; i++) {
      const nc = await connect({ servers: opts.nats });
      conns.push(nc);
      const consumer = await jetstream(nc).consumers.get(name, 'w');
      subs.push(await consumer.consume({ max_messages: 256 }));
    }
    await body({ pub: admin, subs, subject: (i) => `${prefix}.h${(i % 1000).toString(16)}` });
  } finally {
    for (const s of subs) await s.close();
    for (const nc of conns) await nc.close();
    await jsm.streams.delete(name);
    await admin.close();
  }
}

async function rawThroughput(opts: Options): Promise<ThroughputResult> {
  let result: ThroughputResult | null = null;
  await rawJetStream(opts, async ({ pub, subs, subject }) => {
    const js = jetstream(pub);
    let acked = 0;
    let resolveDone: () => void = () => undefined;
    const allAcked = new Promise<void>((r) => (resolveDone = r));
    for (const sub of subs) {
      void (async () => {
        for await (const m of sub) {
          m.ack();
          if (++acked >= opts.count) resolveDone();
        }
      })();
    }
    const started = performance.now();
    const payload = new TextEncoder().encode('0190f0aa-0000-7000-8000-000000000000');
    const window = 256;
    for (let i = 0; i < opts.count; i += window) {
      const ps: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(opts.count, i + window); j++) ps.push(js.publish(subject(j), payload));
      await Promise.all(ps);
    }
    await Promise.race([allAcked, sleep(120_000)]);
    const seconds = (performance.now() - started) / 1000;
    result = {
      kind: 'throughput',
      scenario: 'raw jetstream (js.publish + consume)',
      count: acked,
      seconds: round(seconds, 2),
      perSec: Math.round(acked / seconds),
    };
  });
  if (!result) throw new Error('raw throughput did not run');
  return result;
}

/** Publish one signal every 1/rate s; record publish → pull-return latency. */
async function paced(
  opts: Options,
  send: (i: number, id: string) => Promise<void>,
): Promise<{ sentAt: Map<string, number>; finished: Promise<void> }> {
  const sentAt = new Map<string, number>();
  const interval = 1000 / opts.rate;
  const finished = (async () => {
    const start = performance.now();
    for (let i = 0; i < opts.samples; i++) {
      const due = start + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const id = `lat-${i}-${randomBytes(4).toString('hex')}`;
      sentAt.set(id, performance.now());
      await send(i, id);
    }
  })();
  return { sentAt, finished };
}

async function collectLatency(
  scenario: string,
  opts: Options,
  pullers: ((
    max: number,
    expires: number,
  ) => Promise<RawSignal[] | { dispatch_id: string; ack(): Promise<void> }[]>)[],
  send: (i: number, id: string) => Promise<void>,
): Promise<LatencyResult> {
  const h = histogram();
  let received = 0;
  let stop = false;
  const { sentAt, finished } = await paced(opts, send);
  const loops = pullers.map(async (pull) => {
    while (!stop) {
      const batch = await pull(32, 500);
      const at = performance.now();
      for (const s of batch) {
        const t0 = sentAt.get(s.dispatch_id);
        if (t0 !== undefined) {
          h.recordValue(Math.max(1, Math.round((at - t0) * 1000)));
          received++;
        }
      }
      await Promise.all(batch.map((s) => ('receipt' in s ? s.receipt.ack() : s.ack())));
    }
  });
  await finished;
  const deadline = Date.now() + 30_000;
  while (received < opts.samples && Date.now() < deadline) await sleep(20);
  stop = true;
  await Promise.all(loops);
  return latencyResult(scenario, h);
}

async function transportLatency(scenario: string, fleet: Fleet, opts: Options): Promise<LatencyResult> {
  return collectLatency(
    scenario,
    opts,
    fleet.pullers.map((p) => (max: number, expires: number) => p.pull(max, expires)),
    (i, id) => fleet.producer.publish([{ thread_id: `thread-${i % 100}`, dispatch_id: id }]),
  );
}

async function rawLatency(opts: Options): Promise<LatencyResult> {
  let result: LatencyResult | null = null;
  await rawJetStream(opts, async ({ pub, subs, subject }) => {
    const h = histogram();
    const sentAt = new Map<string, number>();
    let received = 0;
    for (const sub of subs) {
      void (async () => {
        for await (const m of sub) {
          const t0 = sentAt.get(m.string());
          if (t0 !== undefined) {
            h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
            received++;
          }
          m.ack();
        }
      })();
    }
    const interval = 1000 / opts.rate;
    const start = performance.now();
    for (let i = 0; i < opts.samples; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 1) await sleep(wait);
      const id = `lat-${i}`;
      sentAt.set(id, performance.now());
      pub.publish(subject(i), id);
    }
    const deadline = Date.now() + 30_000;
    while (received < opts.samples && Date.now() < deadline) await sleep(20);
    result = latencyResult('raw jetstream (core publish → consume)', h);
  });
  if (!result) throw new Error('raw latency did not run');
  return result;
}

async function storeLatency(mode: 'jetstream' | 'redis-streams', opts: Options): Promise<LatencyResult> {
  const namespace = ns(`store-${mode === 'jetstream' ? 'js' : 'rs'}`);
  const base = {
    redis: opts.redis,
    ...(mode === 'jetstream' ? { nats: opts.nats } : {}),
    signals: mode,
    namespace,
    sweepIntervalMs: 86_400_000,
  } as const;
  const producer = await createMailboxStore(base);
  const pullers = [];
  for (let i = 0; i < opts.pullers; i++) pullers.push(await createMailboxStore(base));
  try {
    return await collectLatency(
      `store ${mode} (enqueue → pullDispatchSignals)`,
      opts,
      pullers.map((s) => async (max: number, expires: number) => {
        const entries = await s.pullDispatchSignals(max, expires);
        return entries.map((e) => ({ dispatch_id: e.dispatch_id, ack: () => e.receipt.ack() }));
      }),
      async (i, id) => {
        const now = Date.now();
        await producer.enqueue(
          queuedDispatch({
            dispatch_id: id,
            thread_id: `thread-${i % 100}`,
            run_id: `run-${id}`,
            created_at: now,
          }),
        );
      },
    );
  } finally {
    await producer.destroyNamespace();
    for (const s of pullers) await s.close();
    await producer.close();
  }
}

const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const opts = parseOptions();
  for (const s of opts.scenarios) if (!ALL.includes(s)) throw new Error(`unknown scenario ${s}`);
  const want = (s: string): boolean => opts.scenarios.includes(s);
  const results: (ThroughputResult | LatencyResult)[] = [];
  const report = (r: ThroughputResult | LatencyResult): void => {
    results.push(r);
    if (opts.json) return;
    if (r.kind === 'throughput') {
      console.log(
        `${r.scenario.padEnd(46)} ${String(r.perSec).padStart(7)} signals/s  (${r.count} in ${r.seconds} s)`,
      );
    } else {
      console.log(
        `${r.scenario.padEnd(46)} p50 ${r.p50Ms.toFixed(3)} ms  p99 ${r.p99Ms.toFixed(3)} ms  ` +
          `p99.9 ${r.p999Ms.toFixed(3)} ms  max ${r.maxMs.toFixed(3)} ms  (n=${r.count})`,
      );
    }
  };
  if (!opts.json) {
    console.log(
      `signals bench: ${opts.count} signals, ${opts.pullers} pullers, batch ${opts.batch}; ` +
        `latency ${opts.samples} samples at ${opts.rate}/s`,
    );
  }
  if (want('tput-raw-js')) report(await rawThroughput(opts));
  for (const [key, label, make] of [
    ['tput-jetstream', 'jetstream transport (publish → pull → ack)', jetstreamFleet],
    ['tput-redis-streams', 'redis-streams transport (publish → pull → ack)', redisFleet],
  ] as const) {
    if (!want(key)) continue;
    const fleet = await make(opts, opts.pullers);
    try {
      report(await transportThroughput(label, fleet, opts));
    } finally {
      await fleet.cleanup();
    }
  }
  if (want('lat-raw-js')) report(await rawLatency(opts));
  for (const [key, label, make] of [
    ['lat-jetstream', 'jetstream transport (publish → pull)', jetstreamFleet],
    ['lat-redis-streams', 'redis-streams transport (publish → pull)', redisFleet],
  ] as const) {
    if (!want(key)) continue;
    const fleet = await make(opts, opts.pullers);
    try {
      report(await transportLatency(label, fleet, opts));
    } finally {
      await fleet.cleanup();
    }
  }
  if (want('lat-store-jetstream')) report(await storeLatency('jetstream', opts));
  if (want('lat-store-redis-streams')) report(await storeLatency('redis-streams', opts));
  if (opts.json) console.log(JSON.stringify({ options: opts, results }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

/**
 * Redis store throughput: the full dispatch lifecycle (enqueue → claim → recordDispatchStart →
 * recordRunResult → ack, five store calls = five EVALSHA round trips) with N concurrent threads, each
 * thread running its lifecycles back to back, for `seconds` per concurrency level.
 *
 *   npm run bench:store -- [--redis redis://127.0.0.1:6379] [--seconds 5] [--warmup 1]
 *                          [--concurrency 1,64] [--signals none|redis-streams] [--no-baseline] [--json]
 *
 * The ceiling for comparison is redis-benchmark running EVALSHA of a trivial script (`return 1`) on the
 * same server, unpipelined with 1 and 50 clients and pipelined (-P 16); the exact commands are printed.
 * Everything runs in a fresh namespace that is destroyed at the end.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { build, type Histogram } from 'hdr-histogram-js';
import { Redis } from 'ioredis';
import { queuedDispatch } from '../src/contract/helpers.js';
import { createMailboxStore } from '../src/redis/index.js';
import type { RedisMailboxStore } from '../src/redis/index.js';

interface Options {
  redis: string;
  seconds: number;
  warmup: number;
  concurrency: number[];
  signals: 'none' | 'redis-streams';
  baseline: boolean;
  json: boolean;
}

interface Result {
  concurrency: number;
  lifecycles: number;
  seconds: number;
  lifecyclesPerSec: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface Baseline {
  command: string;
  requestsPerSec: number | null;
}

const CALLS_PER_LIFECYCLE = 5;

function parseOptions(): Options {
  const program = new Command()
    .name('bench-store')
    .option('--redis <url>', 'Redis server', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--seconds <n>', 'measured seconds per concurrency level', '5')
    .option('--warmup <n>', 'warm-up seconds per concurrency level', '1')
    .option('--concurrency <list>', 'concurrent threads, comma separated', '1,64')
    .option('--signals <mode>', "'none' or 'redis-streams' (XADD in the same scripts)", 'none')
    .option('--no-baseline', 'skip the redis-benchmark EVALSHA ceiling')
    .option('--json', 'print JSON instead of a table', false)
    .parse();
  const o = program.opts<{
    redis: string;
    seconds: string;
    warmup: string;
    concurrency: string;
    signals: string;
    baseline: boolean;
    json: boolean;
  }>();
  const positive = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}`);
    return n;
  };
  if (o.signals !== 'none' && o.signals !== 'redis-streams')
    throw new Error("--signals must be 'none' or 'redis-streams'");
  return {
    redis: o.redis,
    seconds: positive('seconds', o.seconds, 0.1),
    warmup: positive('warmup', o.warmup, 0),
    concurrency: o.concurrency.split(',').map((c) => Math.floor(positive('concurrency', c, 1))),
    signals: o.signals,
    baseline: o.baseline,
    json: o.json,
  };
}

/** One thread: lifecycles back to back until `until`; returns how many completed. */
async function worker(
  store: RedisMailboxStore,
  run: string,
  thread: string,
  until: number,
  histogram: Histogram | null,
): Promise<number> {
  let done = 0;
  while (Date.now() < until) {
    const started = performance.now();
    const now = Date.now();
    const id = `${thread}-${done}`;
    await store.enqueue(
      queuedDispatch({ dispatch_id: id, thread_id: thread, run_id: `r-${id}`, created_at: now }),
    );
    const claimed = await store.claim(thread, `consumer-${run}`, 30_000, now, 1);
    const token = claimed[0]?.claim_token;
    if (claimed.length !== 1 || claimed[0]?.dispatch_id !== id || !token) {
      throw new Error(`claim on ${thread} returned ${JSON.stringify(claimed.map((d) => d.dispatch_id))}`);
    }
    await store.recordDispatchStart(id, token, `instance-${id}`, now);
    await store.recordRunResult(
      id,
      token,
      {
        run_id: `r-${id}`,
        dispatch_instance_id: `instance-${id}`,
        status: 'done',
        termination: { type: 'natural_end' },
        response: 'ok',
      },
      now,
    );
    await store.ack(id, token, now);
    histogram?.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)));
    done++;
  }
  return done;
}

async function measure(store: RedisMailboxStore, concurrency: number, o: Options): Promise<Result> {
  const run = randomBytes(3).toString('hex');
  if (o.warmup > 0) {
    const until = Date.now() + o.warmup * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, (_, i) => worker(store, run, `w-${run}-${i}`, until, null)),
    );
  }
  const histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const start = performance.now();
  const until = Date.now() + o.seconds * 1000;
  const counts = await Promise.all(
    Array.from({ length: concurrency }, (_, i) => worker(store, run, `m-${run}-${i}`, until, histogram)),
  );
  const seconds = (performance.now() - start) / 1000;
  const lifecycles = counts.reduce((a, b) => a + b, 0);
  const result: Result = {
    concurrency,
    lifecycles,
    seconds,
    lifecyclesPerSec: lifecycles / seconds,
    callsPerSec: (lifecycles * CALLS_PER_LIFECYCLE) / seconds,
    p50Ms: histogram.getValueAtPercentile(50) / 1000,
    p99Ms: histogram.getValueAtPercentile(99) / 1000,
    maxMs: histogram.maxValue / 1000,
  };
  histogram.destroy();
  // Keep the namespace small between levels.
  await store.purgeTerminal(Number.MAX_SAFE_INTEGER);
  return result;
}

/** redis-benchmark EVALSHA of `return 1`: the ceiling one round trip per call can reach on this server. */
async function baselines(url: string): Promise<Baseline[]> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  const sha = String(await redis.script('LOAD', 'return 1'));
  redis.disconnect();
  const u = new URL(url);
  const target = ['-h', u.hostname || '127.0.0.1', '-p', u.port || '6379'];
  if (u.password) target.push('-a', decodeURIComponent(u.password), '--no-auth-warning');
  const runs: string[][] = [
    ['-n', '100000', '-c', '1', '-q', 'evalsha', sha, '0'],
    ['-n', '200000', '-c', '50', '-q', 'evalsha', sha, '0'],
    ['-n', '1000000', '-c', '50', '-P', '16', '-q', 'evalsha', sha, '0'],
  ];
  return runs.map((extra) => {
    const shown = `redis-benchmark -h ${target[1]} -p ${target[3]} ${extra.join(' ')}`;
    const out = spawnSync('redis-benchmark', [...target, ...extra], { encoding: 'utf8', timeout: 120_000 });
    const match = /([\d.]+) requests per second/.exec(`${out.stdout ?? ''}`);
    return { command: shown, requestsPerSec: match ? Number(match[1]) : null };
  });
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

async function main(): Promise<void> {
  const o = parseOptions();
  const namespace = `bench-store-${randomBytes(4).toString('hex')}`;
  const store = await createMailboxStore({
    redis: o.redis,
    namespace,
    signals: o.signals,
    sweepIntervalMs: 3_600_000,
    commandTimeoutMs: 30_000,
  });
  const results: Result[] = [];
  try {
    for (const c of o.concurrency) results.push(await measure(store, c, o));
  } finally {
    await store.destroyNamespace();
    await store.close();
  }
  const ceiling = o.baseline ? await baselines(o.redis) : [];
  if (o.json) {
    console.log(JSON.stringify({ signals: o.signals, results, baseline: ceiling }, null, 2));
    return;
  }
  console.log(
    `Redis store lifecycle (enqueue, claim, start, result, ack), signals=${o.signals}, ${o.seconds}s per level`,
  );
  console.log('');
  console.log('threads | lifecycles/s | store calls/s | lifecycle p50 ms | p99 ms | max ms');
  console.log('------: | -----------: | ------------: | ---------------: | -----: | -----:');
  for (const r of results) {
    console.log(
      `${r.concurrency} | ${fmt(r.lifecyclesPerSec)} | ${fmt(r.callsPerSec)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.maxMs, 2)}`,
    );
  }
  if (ceiling.length > 0) {
    console.log('');
    console.log('ceiling: EVALSHA of `return 1` on the same server');
    for (const b of ceiling) {
      console.log(
        `  ${b.requestsPerSec === null ? 'n/a (redis-benchmark failed)' : `${fmt(b.requestsPerSec)} req/s`}  ← ${b.command}`,
      );
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});

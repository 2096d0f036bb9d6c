/**
 * Soak test: a steady Mailbox workload for a long time, watching for memory growth (kept out of CI).
 *
 *   npm run soak -- [--minutes 10] [--redis redis://127.0.0.1:6379] [--nats nats://127.0.0.1:4222 | --no-nats]
 *                   [--rate 200] [--threads 64] [--ttl-ms 5000] [--sample-seconds 10] [--tolerance 0.15]
 *
 * Workload: `rate` background submits per second spread over `threads` threads, plus one foreground submit per
 * second (interrupt + inline claim), a live `sendMessages` per second, a small share of retries (nack) and
 * permanent failures (dead-letter). GC purges terminal records older than `ttl-ms`, so the store's footprint
 * must stay bounded. Uses NATS (JetStream signals + live) when reachable, else Redis Streams signals.
 *
 * Every `sample-seconds` it prints one table row: process RSS and heap, Redis `used_memory` (INFO memory), and
 * the store's status counts. Verdict: the samples after warm-up (the first 20 % of the run, at most 60 s) are
 * split in thirds; a metric is flat when the average of the last third is within `tolerance` (relative) or a
 * small absolute slack of the first third's. Exit code 0 when every metric is flat, 1 otherwise.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { RUN_DISPATCH_STATUSES } from '../src/contract/types.js';
import type { RunDispatchStatus } from '../src/contract/types.js';
import { Mailbox, PermanentError } from '../src/mailbox/index.js';
import type { ExecutorContext, ExecutorOutcome } from '../src/mailbox/types.js';
import { createMailboxStore } from '../src/redis/index.js';
import type { RedisMailboxStore } from '../src/redis/index.js';
import { spawnNats, spawnRedis } from '../test/support/servers.js';
import type { SpawnedServer } from '../test/support/servers.js';

interface Options {
  minutes: number;
  redis: string;
  nats: string | false;
  rate: number;
  threads: number;
  ttlMs: number;
  sampleSeconds: number;
  tolerance: number;
  ownServers: boolean;
}

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  redisMb: number;
  submitted: number;
  completed: number;
  counts: Record<RunDispatchStatus, number>;
}

/** Absolute slack per metric (MB), so tiny baselines do not fail on noise. */
const ABS_SLACK_MB = { rssMb: 8, heapMb: 4, redisMb: 1 } as const;
type Metric = keyof typeof ABS_SLACK_MB;

function parseOptions(): Options {
  const program = new Command()
    .name('soak')
    .option('--minutes <n>', 'duration in minutes', '10')
    .option('--redis <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--nats <url>', 'NATS URL (used when reachable)', process.env.NATS_URL ?? 'nats://127.0.0.1:4222')
    .option('--no-nats', 'Redis only (Redis Streams signals)')
    .option('--rate <n>', 'background submits per second', '200')
    .option('--threads <n>', 'threads the submits are spread over', '64')
    .option('--ttl-ms <n>', 'GC TTL of terminal records (ms)', '5000')
    .option('--sample-seconds <n>', 'sampling interval (s)', '10')
    .option('--tolerance <x>', 'allowed relative growth, last third vs first third', '0.15')
    .option('--own-servers', 'start a private redis-server (and nats-server unless --no-nats) from PATH')
    .parse();
  const o = program.opts<Record<string, string | boolean>>();
  const num = (name: string, min: number): number => {
    const v = Number(o[name]);
    if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number >= ${min}`);
    return v;
  };
  return {
    minutes: num('minutes', 0.1),
    redis: String(o.redis),
    nats: o.nats === false ? false : String(o.nats),
    rate: num('rate', 1),
    threads: Math.floor(num('threads', 1)),
    ttlMs: Math.floor(num('ttlMs', 1)),
    sampleSeconds: num('sampleSeconds', 1),
    tolerance: num('tolerance', 0),
    ownServers: o.ownServers === true,
  };
}

/** True when something accepts TCP connections at the URL's host:port within a second. */
function reachable(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let host = '127.0.0.1';
    let port = 4222;
    try {
      const u = new URL(url);
      host = u.hostname || host;
      port = u.port ? Number(u.port) : port;
    } catch {
      resolve(false);
      return;
    }
    const sock = new Socket();
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.connect(port, host, () => done(true));
  });
}

/**
 * A full GC before each sample makes heap and RSS readings comparable (allocation noise would otherwise
 * dominate a short run). Enabled at runtime, so plain `npm run soak` gets it without NODE_OPTIONS.
 */
function fullGc(): () => void {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    if (typeof gc === 'function') return () => (gc as () => void)();
  } catch {
    // Not available: samples are taken without a forced GC.
  }
  return () => undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function redisUsedMb(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const match = /^used_memory:(\d+)/m.exec(info);
  return match ? Number(match[1]) / 1_048_576 : NaN;
}

async function statusCounts(store: RedisMailboxStore): Promise<Record<RunDispatchStatus, number>> {
  const out = {} as Record<RunDispatchStatus, number>;
  for (const s of RUN_DISPATCH_STATUSES) out[s] = await store.countDispatchesByStatus(s);
  return out;
}

/** A little work per run; ~1 % transient failures (retried), ~0.2 % permanent ones (dead-lettered). */
async function executor(ctx: ExecutorContext): Promise<ExecutorOutcome> {
  const roll = Math.random();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1 + Math.floor(Math.random() * 5));
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (ctx.signal.aborted) return { kind: 'completed', termination: { type: 'cancelled' } };
  if (roll < 0.002) throw new PermanentError('soak: permanent failure');
  if (roll < 0.012 && ctx.attempt === 1) return { kind: 'retry', error: 'soak: transient failure' };
  return { kind: 'completed', status: 'done', termination: { type: 'natural_end' }, response: 'ok' };
}

const pad = (v: string | number, n: number): string => String(v).padStart(n);
const mb = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');

function printHeader(): void {
  console.log(
    [
      pad('t(s)', 6),
      pad('submitted', 10),
      pad('completed', 10),
      pad('done/s', 7),
      pad('Queued', 7),
      pad('Claimed', 7),
      pad('Acked', 7),
      pad('DeadLtr', 7),
      pad('Supersd', 7),
      pad('rss MB', 8),
      pad('heap MB', 8),
      pad('redis MB', 9),
    ].join(' '),
  );
}

function printRow(s: Sample, prev: Sample | null): void {
  const rate = prev
    ? (s.completed - prev.completed) / Math.max(0.001, s.t - prev.t)
    : s.completed / Math.max(0.001, s.t);
  console.log(
    [
      pad(s.t.toFixed(0), 6),
      pad(s.submitted, 10),
      pad(s.completed, 10),
      pad(rate.toFixed(0), 7),
      pad(s.counts.Queued, 7),
      pad(s.counts.Claimed, 7),
      pad(s.counts.Acked, 7),
      pad(s.counts.DeadLetter, 7),
      pad(s.counts.Superseded, 7),
      pad(mb(s.rssMb), 8),
      pad(mb(s.heapMb), 8),
      pad(mb(s.redisMb), 9),
    ].join(' '),
  );
}

const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** First-third vs last-third verdict per metric, after warm-up. */
function verdict(samples: Sample[], totalSeconds: number, tolerance: number): boolean {
  const warmup = Math.min(60, totalSeconds * 0.2);
  const steady = samples.filter((s) => s.t > warmup);
  console.log('');
  if (steady.length < 3) {
    console.log(
      `verdict: INCONCLUSIVE (only ${steady.length} samples after a ${warmup.toFixed(0)} s warm-up)`,
    );
    return false;
  }
  const third = Math.max(1, Math.floor(steady.length / 3));
  const first = steady.slice(0, third);
  const last = steady.slice(-third);
  let flat = true;
  console.log(
    `verdict over ${steady.length} samples after a ${warmup.toFixed(0)} s warm-up (first ${third} vs last ${third}; tolerance ${(tolerance * 100).toFixed(0)} %):`,
  );
  for (const metric of Object.keys(ABS_SLACK_MB) as Metric[]) {
    const a = avg(first.map((s) => s[metric]));
    const b = avg(last.map((s) => s[metric]));
    const limit = Math.max(a * (1 + tolerance), a + ABS_SLACK_MB[metric]);
    const ok = b <= limit;
    flat &&= ok;
    const change = a > 0 ? ((b - a) / a) * 100 : 0;
    console.log(
      `  ${metric.padEnd(7)} first ${mb(a).padStart(7)}  last ${mb(b).padStart(7)}  change ${change >= 0 ? '+' : ''}${change.toFixed(1)} %  limit ${mb(limit)}  ${ok ? 'flat' : 'GROWING'}`,
    );
  }
  console.log(`verdict: ${flat ? 'FLAT' : 'GROWING'}`);
  return flat;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const gc = fullGc();
  const owned: SpawnedServer[] = [];
  if (opts.ownServers) {
    const redisServer = await spawnRedis();
    owned.push(redisServer);
    opts.redis = redisServer.url;
    if (opts.nats !== false) {
      const natsServer = await spawnNats();
      owned.push(natsServer);
      opts.nats = natsServer.url;
    }
  }
  const useNats = opts.nats !== false && (await reachable(opts.nats));
  const namespace = `soak-${randomBytes(4).toString('hex')}`;
  const store = await createMailboxStore({
    redis: opts.redis,
    ...(useNats ? { nats: opts.nats as string } : { signals: 'redis-streams' as const }),
    namespace,
  });
  const probe = new Redis(opts.redis);
  const mailbox = new Mailbox({
    store,
    executor,
    consumerId: `soak-${process.pid}`,
    config: {
      leaseMs: 10_000,
      sweepIntervalMs: 5_000,
      gcIntervalMs: 2_000,
      gcTtlMs: opts.ttlMs,
      defaultRetryDelayMs: 50,
      maxRetryDelayMs: 1_000,
      defaultMaxAttempts: 3,
    },
    logger: {
      error: (msg, fields) => console.error(`[error] ${msg}`, fields ?? ''),
    },
  });
  let completed = 0;
  let failedSubmits = 0;
  mailbox.on('completed', () => completed++);
  mailbox.on('deadLettered', () => completed++);
  await mailbox.start();

  console.log(
    `soak: ${opts.minutes} min, ${opts.rate} submits/s over ${opts.threads} threads, GC TTL ${opts.ttlMs} ms, ` +
      `${useNats ? `JetStream signals + live (${String(opts.nats)})` : 'Redis Streams signals, no live'}, ` +
      `Redis ${opts.redis}${opts.ownServers ? ' (private servers)' : ''}, namespace ${namespace}`,
  );
  printHeader();

  const startedAt = Date.now();
  const endAt = startedAt + opts.minutes * 60_000;
  let stopping = false;
  process.once('SIGINT', () => {
    console.log('SIGINT: finishing early');
    stopping = true;
  });

  let submitted = 0;
  // sendMessages that nobody takes live becomes a durable dispatch: count it as submitted work too.
  mailbox.on('messagesQueued', () => submitted++);
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    const tracked = p.catch(() => {
      failedSubmits++;
    });
    inflight.add(tracked);
    void tracked.finally(() => inflight.delete(tracked));
  };

  // Submitter: every 100 ms a tenth of the rate; bounded in-flight so a slow store applies back-pressure.
  const submitter = (async () => {
    let tick = 0;
    let carry = 0;
    while (!stopping && Date.now() < endAt) {
      carry += opts.rate / 10;
      const n = Math.floor(carry);
      carry -= n;
      for (let i = 0; i < n && inflight.size < 2000; i++) {
        const threadId = `soak-t${submitted % opts.threads}`;
        track(mailbox.submitBackground({ threadId, dispatchId: uuidv7(), runId: uuidv7() }));
        submitted += 1;
      }
      if (tick % 10 === 0) {
        track(mailbox.submit({ threadId: `soak-fg${(tick / 10) % 8}` }));
        track(
          mailbox.sendMessages(`soak-t${tick % opts.threads}`, [
            { role: 'user', content: [{ type: 'text', text: 'soak' }] },
          ]),
        );
        submitted += 1;
      }
      tick++;
      await sleep(100);
    }
  })();

  const samples: Sample[] = [];
  let prev: Sample | null = null;
  const sampleOnce = async (): Promise<void> => {
    gc();
    const mem = process.memoryUsage();
    const sample: Sample = {
      t: (Date.now() - startedAt) / 1000,
      rssMb: mem.rss / 1_048_576,
      heapMb: mem.heapUsed / 1_048_576,
      redisMb: await redisUsedMb(probe).catch(() => NaN),
      submitted,
      completed,
      counts: await statusCounts(store).catch(
        () =>
          Object.fromEntries(RUN_DISPATCH_STATUSES.map((s) => [s, -1])) as Record<RunDispatchStatus, number>,
      ),
    };
    samples.push(sample);
    printRow(sample, prev);
    prev = sample;
  };
  for (let k = 1; !stopping && Date.now() < endAt; k++) {
    const next = Math.min(startedAt + k * opts.sampleSeconds * 1000, endAt);
    while (!stopping && Date.now() < next) await sleep(Math.min(250, next - Date.now()));
    await sampleOnce();
  }
  stopping = true;
  await submitter;
  await Promise.allSettled([...inflight]);

  // Drain: everything submitted must reach a terminal state.
  const drainDeadline = Date.now() + 60_000;
  let counts = await statusCounts(store);
  while ((counts.Queued > 0 || counts.Claimed > 0) && Date.now() < drainDeadline) {
    await sleep(500);
    counts = await statusCounts(store);
  }
  const seconds = (Date.now() - startedAt) / 1000;
  const flat = verdict(samples, Math.min(seconds, opts.minutes * 60), opts.tolerance);
  console.log(
    `totals: submitted ${submitted}, completed or dead-lettered ${completed}, failed submits ${failedSubmits}, ` +
      `left Queued ${counts.Queued}, left Claimed ${counts.Claimed}`,
  );

  await mailbox.stop();
  await store.destroyNamespace().catch((err: unknown) => console.error('destroyNamespace failed', err));
  await store.close();
  probe.disconnect();
  for (const server of owned) await server.stop();
  process.exitCode = flat && counts.Queued === 0 && counts.Claimed === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});

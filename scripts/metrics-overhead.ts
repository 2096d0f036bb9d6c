/**
 * What metrics cost the hot path, measured A/B in ONE process (so the load of a shared machine hits both
 * sides alike): rounds alternate between an uninstrumented memory store + Mailboxes and the same with the
 * OpenTelemetry SDK (store and Mailbox instrumentation, a reader collecting every second). Each round runs
 * the bench's clean workload (every run 1 ms) and reports process CPU per dispatch; the medians are compared.
 *
 *   npx tsx scripts/metrics-overhead.ts [--rounds 6] [--dispatches 20000] [--threads 64] [--feed]
 *     [--backend memory|redis] [--redis redis://127.0.0.1:6379] [--only both|store|mailbox]
 *     [--side both|on|off] [--export-ms 1000]
 *
 * `--backend redis` runs each round on a fresh namespace of a Redis store with Redis Streams signals (created
 * with `createMailboxStore`, destroyed after the round), still in this one process: the figure is the Node
 * side's CPU per dispatch (store client, signal loop and Mailboxes), the part metrics add to; Redis's own CPU
 * is not in it.
 *
 * Besides the two medians it prints the median of the per-pair ratios (each on round against the off round
 * beside it), with their range: on a shared machine the pairs show how far the figures scatter.
 *
 * `--only store` (or `mailbox`) instruments only the store (or only the Mailboxes) on the instrumented side,
 * to see which part a difference comes from.
 *
 * `--side on` (or `off`) runs only the instrumented (or the plain) rounds, after one warm-up round of the
 * same side: to profile one side, or to count its instructions (`valgrind --tool=callgrind`; it runs ~40×
 * slower, so pass `--export-ms 40000` to keep the collections per dispatch as they are at full speed).
 *
 * `--feed` also attaches the lifecycle feed publisher (in-process transport) on the instrumented side.
 */
import { parseArgs } from 'node:util';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { attachLifecycleFeed } from '../src/feed/index.js';
import { Mailbox } from '../src/mailbox/index.js';
import type { MailboxStore } from '../src/contract/store.js';
import { MemoryMailboxStore } from '../src/memory/index.js';
import { instrumentMailbox, instrumentStore } from '../src/metrics/index.js';
import { createMailboxStore } from '../src/redis/index.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    dispatches: { type: 'string', default: '20000' },
    threads: { type: 'string', default: '64' },
    nodes: { type: 'string', default: '2' },
    feed: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'memory' },
    only: { type: 'string', default: 'both' },
    side: { type: 'string', default: 'both' },
    'export-ms': { type: 'string', default: '1000' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
  },
});
const ROUNDS = Number(values.rounds);
const DISPATCHES = Number(values.dispatches);
const THREADS = Number(values.threads);
const NODES = Number(values.nodes);
const BACKEND = values.backend;
/** Submits in flight at once against Redis (one at a time would measure round trips, not CPU). */
const SUBMIT_WINDOW = 64;
/** Which side the instrumented rounds instrument: both, or only the store or only the Mailboxes. */
const ONLY = values.only;
if (ONLY !== 'both' && ONLY !== 'store' && ONLY !== 'mailbox')
  throw new Error(`--only must be both, store or mailbox, not ${ONLY}`);
if (BACKEND !== 'memory' && BACKEND !== 'redis')
  throw new Error(`--backend must be memory or redis, not ${BACKEND}`);

const discard: PushMetricExporter = {
  export: (_metrics, done) => done({ code: 0 }),
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

async function round(instrumented: boolean): Promise<{ cpuUs: number; perS: number }> {
  const provider = instrumented
    ? new MeterProvider({
        readers: [
          new PeriodicExportingMetricReader({
            exporter: discard,
            exportIntervalMillis: Number(values['export-ms']),
          }),
        ],
      })
    : null;
  let store: MailboxStore;
  let destroy = (): Promise<void> => Promise.resolve();
  if (BACKEND === 'redis') {
    const redisStore = await createMailboxStore({
      redis: values.redis as string,
      signals: 'redis-streams',
      namespace: `metrics-overhead-${process.pid}-${Date.now().toString(36)}`,
    });
    store = redisStore;
    destroy = () => redisStore.destroyNamespace();
  } else {
    store = new MemoryMailboxStore();
  }
  if (provider && ONLY !== 'mailbox') instrumentStore(store, { meterProvider: provider, backend: BACKEND });
  let done = 0;
  let finish!: () => void;
  const all = new Promise<void>((resolve) => (finish = resolve));
  const mailboxes = Array.from({ length: NODES }, (_, i) => {
    const mailbox = new Mailbox({
      store,
      consumerId: `node-${i}`,
      executor: () => new Promise((resolve) => setTimeout(() => resolve({ kind: 'completed' }), 1)),
    });
    if (provider && ONLY !== 'store') instrumentMailbox(mailbox, { meterProvider: provider });
    mailbox.on('completed', () => {
      if (++done === DISPATCHES) finish();
    });
    return mailbox;
  });
  const publishers =
    provider && values.feed ? mailboxes.map((mailbox) => attachLifecycleFeed({ store, mailbox })) : [];
  await Promise.all(mailboxes.map((m) => m.start()));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // Against Redis, one submit at a time would measure round trips: keep SUBMIT_WINDOW in flight instead.
  const window = BACKEND === 'redis' ? SUBMIT_WINDOW : 1;
  let next = 0;
  const submitter = async (): Promise<void> => {
    while (next < DISPATCHES) {
      const i = next++;
      const mailbox = mailboxes[i % NODES] as Mailbox;
      await mailbox.submitBackground({ threadId: `t${i % THREADS}` });
    }
  };
  await Promise.all(Array.from({ length: window }, submitter));
  await all;
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(publishers.map((p) => p.close()));
  await Promise.all(mailboxes.map((m) => m.stop()));
  await destroy();
  await store.close();
  await provider?.shutdown();
  return { cpuUs: (cpu.user + cpu.system) / DISPATCHES, perS: DISPATCHES / (wall / 1000) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

const logRound = (n: number, side: string, res: { cpuUs: number; perS: number }): void => {
  console.log(
    `round ${n} ${side.padEnd(3)} ${res.cpuUs.toFixed(1)} µs CPU/dispatch  ${res.perS.toFixed(0)} dispatches/s`,
  );
};

const results = { off: [] as { cpuUs: number; perS: number }[], on: [] as { cpuUs: number; perS: number }[] };
if (values.side === 'on' || values.side === 'off') {
  // One side only, in a process of its own: for a profiler or an instruction counter run around it.
  const instrumented = values.side === 'on';
  await round(instrumented);
  for (let r = 0; r < ROUNDS; r++) {
    logRound(r + 1, values.side, await round(instrumented));
  }
  process.exit(0);
}
await round(false); // warm-up (JIT), not counted
await round(true);
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which side goes first, so a drift in machine load does not favour one side.
  for (const side of r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    const res = await round(side === 'on');
    results[side].push(res);
    logRound(r + 1, side, res);
  }
}
const cpuOff = median(results.off.map((r) => r.cpuUs));
const cpuOn = median(results.on.map((r) => r.cpuUs));
const tOff = median(results.off.map((r) => r.perS));
const tOn = median(results.on.map((r) => r.perS));
console.log(
  `median CPU/dispatch: off ${cpuOff.toFixed(1)} µs, on ${cpuOn.toFixed(1)} µs (${(((cpuOn - cpuOff) / cpuOff) * 100).toFixed(1)} %)`,
);
console.log(
  `median throughput:   off ${tOff.toFixed(0)}/s, on ${tOn.toFixed(0)}/s (${(((tOn - tOff) / tOff) * 100).toFixed(1)} %)`,
);
// Each round's on/off ratio against the off round run right beside it: a load drift on a shared machine
// moves both rounds of a pair, so the pairs' median is steadier than the ratio of the two medians.
const pct = (x: number): string => `${((x - 1) * 100).toFixed(1)} %`;
const pairs = (f: (r: { cpuUs: number; perS: number }) => number): number[] =>
  results.on
    .map((on, i) => f(on) / f(results.off[i] as { cpuUs: number; perS: number }))
    .sort((a, b) => a - b);
const cpuPairs = pairs((r) => r.cpuUs);
const perSPairs = pairs((r) => r.perS);
console.log(
  `paired (median, min..max of ${ROUNDS} pairs): CPU/dispatch ${pct(median(cpuPairs))} (${pct(cpuPairs[0] as number)}..${pct(cpuPairs[ROUNDS - 1] as number)}), throughput ${pct(median(perSPairs))} (${pct(perSPairs[0] as number)}..${pct(perSPairs[ROUNDS - 1] as number)})`,
);

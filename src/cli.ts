/**
 * The `awaken-mailbox` command line: `bench` (the load-test harness), `inspect` (read a store), `doctor` (check
 * the servers). Exit codes: 0 success, 1 failure (invariant violation, failed check, run error), 2 bad usage,
 * 130 interrupted.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { StorageError } from './contract/errors.js';
import { defaultNatsUrl, defaultRedisUrl } from './bench/backend.js';
import { formatDoctor, runDoctor } from './bench/doctor.js';
import { parseLimit, parseOffset, parsePartitions, parseStatusList, runInspect } from './bench/inspect.js';
import { BENCH_DEFAULTS, parseBenchOptions } from './bench/options.js';
import type { BenchOptions, RawBenchOptions } from './bench/options.js';
import { ClusterShareMeter, formatShares, withLocalCluster } from './bench/cluster-bench.js';
import type { MasterShare } from './bench/cluster-bench.js';
import { renderReportHtml } from './bench/report-html.js';
import { benchExitCode, failureSummary, formatResult, resultForJson } from './bench/results.js';
import { runBench } from './bench/run.js';
import { packageVersion } from './util/package-version.js';
import { registerDlqCommand } from './bench/dlq.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export interface CliIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown; isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Shown after the command list of `awaken-mailbox --help`. */
const TOP_LEVEL_HELP = `
Examples:
  awaken-mailbox doctor                               are Redis and NATS reachable, new enough, JetStream on?
  awaken-mailbox inspect --namespace prod-eu          counts by status, threads with queued work
  awaken-mailbox inspect --namespace prod-eu --status DeadLetter --limit 20
                                                      dead letters across every thread, 20 per page
  awaken-mailbox inspect --namespace prod-eu --thread t-1
                                                      one thread's dispatches
  awaken-mailbox bench --dispatches 2000 --nodes 2    load test with an invariant check afterwards

Servers: --redis / --nats, else $REDIS_URL / $NATS_URL, else redis://127.0.0.1:6379 / nats://127.0.0.1:4222.
Exit codes: 0 success, 1 failure (failed check, invariant violation, run error), 2 bad usage, 130 interrupted.
Every option of a command: awaken-mailbox <command> --help
`;

const INSPECT_HELP = `
Without --thread, --status or --dispatch: the counts by status and the threads with queued work.
--status without --thread lists across every thread: Queued by thread, Claimed by lease expiry, terminal
statuses (Acked, Cancelled, Superseded, DeadLetter) oldest first. A page says next_offset (null on the last).

Examples:
  awaken-mailbox inspect --namespace prod-eu
  awaken-mailbox inspect --namespace prod-eu --status DeadLetter --limit 20 --offset 20
  awaken-mailbox inspect --namespace prod-eu --thread t-1 --status Queued,Claimed
  awaken-mailbox inspect --namespace prod-eu --dispatch 0190f1c2-7d4e-7000-8000-000000000001
`;

const DOCTOR_HELP = `
Examples:
  awaken-mailbox doctor
  awaken-mailbox doctor --redis redis://:secret@redis.internal:6379 --nats nats://nats.internal:4222
  awaken-mailbox doctor --no-nats --json
`;

/**
 * Run the bench on a local cluster (`--local-cluster`, started and stopped around it) or the given one
 * (`--redis-cluster`), measuring each master's share of the commands and CPU; otherwise just run it.
 */
async function runClusterAware<T>(
  parsed: BenchOptions,
  stderr: CliIO['stderr'],
  run: (opts: BenchOptions) => Promise<T>,
): Promise<{ result: T; opts: BenchOptions; masters: MasterShare[] | null }> {
  const measured = async (opts: BenchOptions) => {
    if (opts.redisCluster === null) return { result: await run(opts), opts, masters: null };
    const meter = await ClusterShareMeter.begin(opts.redisCluster);
    const result = await run(opts);
    return { result, opts, masters: await meter.end() };
  };
  if (!parsed.localCluster) return measured(parsed);
  return withLocalCluster(parsed, stderr, measured);
}

function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command('awaken-mailbox')
    .description(
      'Durable run mailbox for Awaken-style agent runtimes: check the servers, look into a store, load-test.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .addHelpText('after', TOP_LEVEL_HELP)
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .showHelpAfterError();

  program
    .command('bench')
    .description('run a workload through Mailbox nodes and check the mailbox invariants afterwards')
    .option(
      '--backend <kind>',
      'memory | redis (default: redis + nats when reachable, else memory unless a Redis was named)',
    )
    .option(
      '--redis <url>',
      `Redis URL (default $REDIS_URL or ${defaultRedisUrl({})}; a named one that does not answer is an error)`,
    )
    .option('--nats <url>', `NATS URL (default $NATS_URL or ${defaultNatsUrl({})})`)
    .option('--no-nats', 'do not use NATS (Redis Streams signals, no live commands)')
    .option('--signals <kind>', 'jetstream | redis-streams | none (default: jetstream when NATS has it)')
    .option(
      '--nodes <n>',
      `worker nodes (separate processes except with the memory backend)`,
      String(BENCH_DEFAULTS.nodes),
    )
    .option(
      '--threads <n>',
      'distinct threads the dispatches are spread over',
      String(BENCH_DEFAULTS.threads),
    )
    .option('--dispatches <n>', `dispatches to submit (default ${BENCH_DEFAULTS.dispatches})`)
    .option('--duration <time>', 'submit for this long instead (e.g. 30s, 2m)')
    .option('--rate <n>', 'submissions per second (default: as fast as possible)')
    .option(
      '--warmup <time>',
      'also report enqueue→start for dispatches enqueued this long after the first (e.g. 3s)',
    )
    .option(
      '--max-pending <n>',
      'most submitted-but-unfinished dispatches (default: unbounded, 16×threads with --duration)',
    )
    .option(
      '--run-ms <dist>',
      'simulated run time: fixed:5, uniform:1-10, exp:5, normal:20,5',
      BENCH_DEFAULTS.runMs,
    )
    .option(
      '--fail-rate <p>',
      'probability a run fails transiently (retried)',
      String(BENCH_DEFAULTS.failRate),
    )
    .option(
      '--interrupt-rate <p>',
      'probability a run is held until its thread is interrupted',
      String(BENCH_DEFAULTS.interruptRate),
    )
    .option(
      '--live-rate <p>',
      'probability a run waits for a live command the coordinator sends it',
      String(BENCH_DEFAULTS.liveRate),
    )
    .option(
      '--kill-node-at <when>',
      'SIGKILL one node: after N completed (150), a share (50%) or a time (2s)',
    )
    .option(
      '--lease-ms <ms>',
      'lease of a claim (short, so a killed node is reclaimed quickly)',
      String(BENCH_DEFAULTS.leaseMs),
    )
    .option(
      '--max-attempts <n>',
      'attempts before a dispatch dead-letters',
      String(BENCH_DEFAULTS.maxAttempts),
    )
    .option(
      '--retry-delay-ms <ms>',
      'base retry delay after a failed run',
      String(BENCH_DEFAULTS.retryDelayMs),
    )
    .option(
      '--live-linger-ms <ms>',
      "how long a node keeps a thread's live subscription after its last run there (0: drop it at once)",
      String(BENCH_DEFAULTS.liveLingerMs),
    )
    .option(
      '--epoch-poll-ms <ms>',
      'how often a node reads the epochs of runs no live command reaches, e.g. without NATS (0: only at lease renewal)',
      String(BENCH_DEFAULTS.epochPollMs),
    )
    .option(
      '--drain-timeout <time>',
      'how long to wait for the last dispatches once submission is over',
      '120s',
    )
    .option('--progress <mode>', 'auto | tty | lines | off', 'auto')
    .option('--json', 'print one JSON object with the results on stdout')
    .option('--report <file>', 'write a self-contained HTML report with charts')
    .option(
      '--baseline <names>',
      'also run the same workload through bullmq, groupmq or both (bullmq,groupmq) and report the ratios',
    )
    .option('--partitions <n>', 'partitions of the namespace, 1..256 (spread over Redis Cluster slots)', '1')
    .option('--redis-cluster <urls>', 'seed URLs of a Redis Cluster, comma-separated (instead of --redis)')
    .option(
      '--local-cluster',
      'start a 6-node Redis Cluster and a 3-node JetStream cluster on this machine for the run',
    )
    .option('--durability <mode>', 'async | replicated (each write confirmed by a replica)', 'async')
    .option(
      '--jetstream-replicas <n>',
      'copies of the JetStream signal stream: 1 or 3 (3 with --local-cluster)',
    )
    .option(
      '--quiet-claimed-threads',
      "no signal for an enqueue onto a thread that holds a claim (the stores' quietClaimedThreads)",
    )
    .action(async (raw: RawBenchOptions) => {
      const parsed = parseBenchOptions(raw, io.env);
      const controller = new AbortController();
      const onSigint = (): void => controller.abort();
      process.once('SIGINT', onSigint);
      try {
        const { result, opts, masters } = await runClusterAware(parsed, io.stderr, (o) =>
          runBench(o, { stderr: io.stderr, signal: controller.signal }),
        );
        if (opts.report) {
          writeFileSync(opts.report, renderReportHtml(result));
          io.stderr.write(`bench: report written to ${opts.report}\n`);
        }
        io.stdout.write(
          opts.json
            ? `${JSON.stringify({ ...resultForJson(result), ...(masters ? { redis_masters: masters } : {}) })}\n`
            : `${formatResult(result)}\n${masters ? `${formatShares(masters)}\n` : ''}`,
        );
        const code = benchExitCode(result, controller.signal.aborted);
        if (code === EXIT_FAILURE) io.stderr.write(`bench: FAILED — ${failureSummary(result)}\n`);
        setExit(code);
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });

  program
    .command('inspect')
    .description(
      "print, as JSON, the counts by status, a thread's dispatches, the dispatches in some statuses across threads, or one dispatch",
    )
    .option('--redis <url>', 'Redis URL (default $REDIS_URL or redis://127.0.0.1:6379)')
    .option('--namespace <ns>', 'the store namespace (default: the upstream-compatible default keys)')
    .option('--thread <id>', "list this thread's dispatches")
    .option('--dispatch <id>', 'show one dispatch')
    .option(
      '--status <list>',
      'only these statuses, e.g. DeadLetter or Queued,Claimed (across threads without --thread)',
    )
    .option('--limit <n>', 'page size, 1..200', '50')
    .option('--offset <n>', 'matching records to skip (next_offset of the previous page)', '0')
    .option('--partitions <n>', 'partitions the namespace was created with (partitions: N), 1..256', '1')
    .addHelpText('after', INSPECT_HELP)
    .action(
      async (raw: {
        redis?: string;
        namespace?: string;
        thread?: string;
        dispatch?: string;
        status?: string;
        limit: string;
        offset: string;
        partitions: string;
      }) => {
        const out = await runInspect({
          partitions: parsePartitions(raw.partitions),
          redis: raw.redis ?? defaultRedisUrl(io.env),
          namespace: raw.namespace ?? null,
          thread: raw.thread ?? null,
          dispatch: raw.dispatch ?? null,
          status: raw.status !== undefined ? parseStatusList(raw.status) : null,
          limit: parseLimit(raw.limit),
          offset: parseOffset(raw.offset),
        });
        io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        setExit(EXIT_OK);
      },
    );

  program
    .command('doctor')
    .description('check Redis and NATS connectivity, versions, and that JetStream is enabled')
    .option('--redis <url>', 'Redis URL (default $REDIS_URL or redis://127.0.0.1:6379)')
    .option('--nats <url>', 'NATS URL (default $NATS_URL or nats://127.0.0.1:4222)')
    .option('--no-nats', 'skip the NATS checks (Redis-only deployments)')
    .option('--json', 'print the checks as JSON')
    .addHelpText('after', DOCTOR_HELP)
    .action(async (raw: { redis?: string; nats?: string | boolean; json?: boolean }) => {
      const report = await runDoctor({
        redis: raw.redis ?? defaultRedisUrl(io.env),
        nats: raw.nats === false ? null : typeof raw.nats === 'string' ? raw.nats : defaultNatsUrl(io.env),
      });
      io.stdout.write(raw.json ? `${JSON.stringify(report)}\n` : `${formatDoctor(report)}\n`);
      setExit(report.ok ? EXIT_OK : EXIT_FAILURE);
    });

  registerDlqCommand(program, io, setExit);

  return program;
}

/** Run the CLI with `argv` (without the node and script paths); resolves with the exit code. */
export async function main(
  argv: readonly string[],
  io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; anything else commander rejected is bad usage (already printed).
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof StorageError && err.kind === 'Validation') {
      io.stderr.write(`awaken-mailbox: ${err.detail}\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`awaken-mailbox: ${describe(err)}\n`);
    return EXIT_FAILURE;
  }
}

/** Run when executed directly (tsx src/cli.ts …, node dist/src/cli.js …); bin/awaken-mailbox.js calls `main`. */
const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const code = await main(process.argv.slice(2));
  // Exit explicitly: a store or client that failed half-way must not keep the CLI alive.
  process.exit(code);
}

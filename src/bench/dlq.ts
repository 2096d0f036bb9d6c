/**
 * `awaken-mailbox dlq list|show|retry|purge`: the dead-letter queue of a namespace, across threads.
 *
 * Dead letters are found through the store's own indexes, never `KEYS`: across threads the terminal index
 * (oldest first, in batches of `SCAN_BATCH`, at most `MAX_SCAN` records read per command), or one thread's
 * DeadLetter set with `--thread`. `retry` requeues (`requeueDeadLetter`: Queued now, at the thread's current
 * epoch, signalled; `--reset-attempts` for the full max_attempts again), `purge` deletes. Both take ids, or
 * `--all` (up to `--limit` dead letters, optionally only those dead for `--older-than`), and collect their
 * targets before changing anything, so a page never shifts under them.
 *
 * Output is JSON on stdout, like `inspect`. Exit code 1 when a retry or purge left something undone.
 */
import type { Command } from 'commander';
import { runDispatchToWire } from '../contract/codec.js';
import { isDeadLetterStore } from '../contract/dead-letters.js';
import type { DeadLetterMailboxStore } from '../contract/dead-letters.js';
import { StorageError } from '../contract/errors.js';
import type { MailboxStore } from '../contract/store.js';
import type { RunDispatch } from '../contract/types.js';
import { createMailboxStore } from '../redis/create-store.js';
import { parsePartitions } from './inspect.js';
import type { SignalsMode } from '../redis/options.js';
import { defaultNatsUrl, defaultRedisUrl } from './backend.js';

/** Records read per round trip while looking for dead letters. */
const SCAN_BATCH = 500;
/** Most terminal records one command reads looking for dead letters (the answer then says `truncated`). */
export const MAX_SCAN = 200_000;
export const DLQ_MAX_PAGE = 200;
/** Most dead letters one `retry --all` / `purge --all` acts on. */
export const DLQ_MAX_ALL = 10_000;
/** Ids per purgeDeadLetters call. */
const PURGE_BATCH = 500;

export interface DlqScope {
  /** Only this thread's dead letters (its DeadLetter set); null = every thread (the terminal index). */
  thread: string | null;
}

export interface DlqPage {
  thread: string | null;
  limit: number;
  offset: number;
  /** `--offset` of the next page; null on the last one. */
  next_offset: number | null;
  /** Set when the scan stopped at `MAX_SCAN` records before the page was full. */
  truncated?: string;
  items: ReturnType<typeof runDispatchToWire>[];
}

export interface DlqActionReport {
  /** Dispatches the command acted on. */
  done: string[];
  /** Dispatches it could not act on, with why (say, a dedupe key held by a newer dispatch). */
  failed: { dispatch_id: string; error: string }[];
  truncated?: string;
}

function deadLetterStore(store: MailboxStore): DeadLetterMailboxStore {
  if (!isDeadLetterStore(store)) throw StorageError.validation('this store has no dead-letter operations');
  return store;
}

/**
 * Dead letters in order (the thread's set, or the terminal index oldest first), in batches; stops after
 * `MAX_SCAN` records read and says so in `scan.truncated`.
 */
async function* deadLetters(
  store: MailboxStore,
  scope: DlqScope,
  scan: { read: number; truncated: boolean },
): AsyncGenerator<RunDispatch> {
  for (let offset = 0; ; offset += SCAN_BATCH) {
    if (scan.read >= MAX_SCAN) {
      scan.truncated = true;
      return;
    }
    const batch =
      scope.thread === null
        ? await store.listTerminalDispatches(SCAN_BATCH, offset)
        : await store.listDispatches(scope.thread, ['DeadLetter'], SCAN_BATCH, offset);
    scan.read += batch.length;
    for (const d of batch) if (d.status === 'DeadLetter') yield d;
    if (batch.length < SCAN_BATCH) return;
  }
}

const truncatedNote = (read: number): string =>
  `stopped after reading ${read} records; narrow with --thread, or page with --offset`;

export async function listDeadLetters(
  store: MailboxStore,
  scope: DlqScope,
  limit: number,
  offset: number,
): Promise<DlqPage> {
  const scan = { read: 0, truncated: false };
  const items: RunDispatch[] = [];
  let skipped = 0;
  let more = false;
  for await (const d of deadLetters(store, scope, scan)) {
    if (skipped < offset) skipped++;
    else if (items.length < limit) items.push(d);
    else {
      more = true;
      break;
    }
  }
  return {
    thread: scope.thread,
    limit,
    offset,
    next_offset: more ? offset + limit : null,
    ...(scan.truncated ? { truncated: truncatedNote(scan.read) } : {}),
    items: items.map(runDispatchToWire),
  };
}

/** `--all`: up to `limit` dead letters (dead before `deadBefore` when given), collected before acting. */
async function collectTargets(
  store: MailboxStore,
  scope: DlqScope,
  limit: number,
  deadBefore: number | null,
): Promise<{ ids: string[]; truncated?: string }> {
  const scan = { read: 0, truncated: false };
  const ids: string[] = [];
  for await (const d of deadLetters(store, scope, scan)) {
    if (ids.length >= limit) break;
    if (deadBefore === null || d.updated_at < deadBefore) ids.push(d.dispatch_id);
  }
  return scan.truncated ? { ids, truncated: truncatedNote(scan.read) } : { ids };
}

export type DlqTargets = { ids: string[] } | { all: true; limit: number; olderThanMs: number | null };

async function targetsOf(
  store: MailboxStore,
  scope: DlqScope,
  targets: DlqTargets,
  now: number,
): Promise<{ ids: string[]; truncated?: string }> {
  if ('ids' in targets) return { ids: [...new Set(targets.ids)] };
  return collectTargets(
    store,
    scope,
    targets.limit,
    targets.olderThanMs === null ? null : now - targets.olderThanMs,
  );
}

export async function retryDeadLetters(
  store: MailboxStore,
  scope: DlqScope,
  targets: DlqTargets,
  resetAttempts: boolean,
  now: number = Date.now(),
): Promise<DlqActionReport> {
  const dlq = deadLetterStore(store);
  const { ids, truncated } = await targetsOf(dlq, scope, targets, now);
  const report: DlqActionReport = { done: [], failed: [], ...(truncated ? { truncated } : {}) };
  for (const id of ids) {
    try {
      await dlq.requeueDeadLetter(id, now, { resetAttempts });
      report.done.push(id);
    } catch (err) {
      // One refusal (dedupe key held, already requeued) must not stop the others; connection errors do.
      if (err instanceof StorageError && err.kind !== 'Io') {
        report.failed.push({ dispatch_id: id, error: err.message });
      } else {
        throw err;
      }
    }
  }
  return report;
}

export async function purgeDeadLetters(
  store: MailboxStore,
  scope: DlqScope,
  targets: DlqTargets,
  now: number = Date.now(),
): Promise<DlqActionReport> {
  const dlq = deadLetterStore(store);
  const { ids, truncated } = await targetsOf(dlq, scope, targets, now);
  const report: DlqActionReport = { done: [], failed: [], ...(truncated ? { truncated } : {}) };
  for (let i = 0; i < ids.length; i += PURGE_BATCH) {
    const batch = ids.slice(i, i + PURGE_BATCH);
    // purgeDeadLetters skips what is not (or no longer) a dead letter; tell the two apart afterwards.
    await dlq.purgeDeadLetters(batch);
    const left = await Promise.all(batch.map((id) => dlq.loadDispatch(id)));
    batch.forEach((id, j) => {
      const d = left[j];
      if (d === null || d === undefined) report.done.push(id);
      else report.failed.push({ dispatch_id: id, error: `dispatch '${id}' is ${d.status}, not DeadLetter` });
    });
  }
  return report;
}

// ---- command line ----

/** `30s`, `15m`, `12h`, `7d`, or `500ms`. */
export function parseAge(option: string, text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = m ? Number(m[1]) * unit[m[2] as keyof typeof unit] : NaN;
  if (!m || !Number.isSafeInteger(ms) || ms <= 0) {
    throw StorageError.validation(`--${option} must be a duration like 30s, 15m, 12h or 7d, got '${text}'`);
  }
  return ms;
}

function intIn(option: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw StorageError.validation(`--${option} must be an integer in ${min}..${max}, got '${text}'`);
  }
  return n;
}

const SIGNALS: readonly SignalsMode[] = ['jetstream', 'redis-streams', 'none'];

interface Connection {
  redis?: string;
  nats?: string;
  signals?: string;
  namespace?: string;
  partitions?: string;
}

/**
 * The store of the namespace. Only `retry` signals anything: it needs the signals your nodes use (default as
 * createMailboxStore: JetStream with --nats, else Redis Streams). Other commands open it without signals.
 */
async function openStore(
  conn: Connection,
  env: NodeJS.ProcessEnv,
  withSignals: boolean,
): Promise<MailboxStore> {
  if (conn.signals !== undefined && !(SIGNALS as readonly string[]).includes(conn.signals)) {
    throw StorageError.validation(`--signals must be one of ${SIGNALS.join(', ')}, got '${conn.signals}'`);
  }
  const signals = (conn.signals as SignalsMode | undefined) ?? (conn.nats ? 'jetstream' : 'redis-streams');
  const nats = conn.nats ?? (signals === 'jetstream' ? defaultNatsUrl(env) : undefined);
  return createMailboxStore({
    redis: conn.redis ?? defaultRedisUrl(env),
    ...(conn.namespace !== undefined ? { namespace: conn.namespace } : {}),
    ...(conn.partitions !== undefined ? { partitions: parsePartitions(conn.partitions) } : {}),
    ...(withSignals ? { signals, ...(nats !== undefined ? { nats } : {}) } : { signals: 'none' }),
  });
}

export interface DlqCliIO {
  stdout: { write(chunk: string): unknown };
  env: NodeJS.ProcessEnv;
}

const DLQ_HELP = `
Dead letters are listed across every thread oldest first (by the time they died), or for one --thread.
retry puts them back in the queue (Queued now, at the thread's current epoch, signalled); a dead letter
whose dedupe key another live dispatch holds is refused and reported. purge deletes them for good.
retry signals through the signals your nodes use: pass the same --nats / --signals as they do (with a
different one the dispatch still runs, once the sweeper republishes it).

Examples:
  awaken-mailbox dlq list --namespace prod-eu --limit 20
  awaken-mailbox dlq show --namespace prod-eu 0190f1c2-7d4e-7000-8000-000000000001
  awaken-mailbox dlq retry --namespace prod-eu --nats nats://10.0.0.6:4222 0190f1c2-7d4e-7000-8000-000000000001
  awaken-mailbox dlq retry --namespace prod-eu --all --limit 500 --reset-attempts
  awaken-mailbox dlq purge --namespace prod-eu --all --older-than 7d
`;

/** Register `dlq` and its subcommands on the CLI program. */
export function registerDlqCommand(program: Command, io: DlqCliIO, setExit: (code: number) => void): void {
  const print = (value: unknown): void => void io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  const connectionOptions = (cmd: Command): Command =>
    cmd
      .option('--redis <url>', 'Redis URL (default $REDIS_URL or redis://127.0.0.1:6379)')
      .option('--namespace <ns>', 'the store namespace (default: the upstream-compatible default keys)')
      .option('--partitions <n>', 'partitions the namespace was created with (partitions: N), 1..256');
  const withStore = async <T>(
    conn: Connection,
    withSignals: boolean,
    fn: (store: MailboxStore) => Promise<T>,
  ): Promise<T> => {
    const store = await openStore(conn, io.env, withSignals);
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  };
  const targetsFrom = (
    ids: string[],
    raw: { all?: boolean; limit?: string; olderThan?: string },
  ): DlqTargets => {
    if (raw.all && ids.length > 0) throw StorageError.validation('give dispatch ids or --all, not both');
    if (!raw.all) {
      if (ids.length === 0) throw StorageError.validation('give one or more dispatch ids, or --all');
      if (raw.olderThan !== undefined) throw StorageError.validation('--older-than goes with --all');
      return { ids };
    }
    return {
      all: true,
      limit: intIn('limit', raw.limit ?? '1000', 1, DLQ_MAX_ALL),
      olderThanMs: raw.olderThan === undefined ? null : parseAge('older-than', raw.olderThan),
    };
  };

  const dlq = program
    .command('dlq')
    .description('list, show, retry or purge dead-lettered dispatches across threads (JSON output)')
    .addHelpText('after', DLQ_HELP);

  connectionOptions(dlq.command('list'))
    .description('list dead letters, oldest first, a page at a time')
    .option('--thread <id>', "only this thread's dead letters")
    .option('--limit <n>', `page size, 1..${DLQ_MAX_PAGE}`, '50')
    .option('--offset <n>', 'dead letters to skip (next_offset of the previous page)', '0')
    .action(async (raw: Connection & { thread?: string; limit: string; offset: string }) => {
      const limit = intIn('limit', raw.limit, 1, DLQ_MAX_PAGE);
      const offset = intIn('offset', raw.offset, 0, 10_000_000);
      const page = await withStore(raw, false, (store) =>
        listDeadLetters(store, { thread: raw.thread ?? null }, limit, offset),
      );
      print({ namespace: raw.namespace ?? null, ...page });
      setExit(0);
    });

  connectionOptions(dlq.command('show'))
    .description('show one dispatch (dead or not) with its last error')
    .argument('<dispatch-id>')
    .action(async (dispatchId: string, raw: Connection) => {
      const d = await withStore(raw, false, (store) => store.loadDispatch(dispatchId));
      if (d === null) throw StorageError.notFound(`dispatch '${dispatchId}'`);
      print({ dead_letter: d.status === 'DeadLetter', dispatch: runDispatchToWire(d) });
      setExit(0);
    });

  connectionOptions(dlq.command('retry'))
    .description('put dead letters back in the queue')
    .argument('[dispatch-ids...]')
    .option('--nats <url>', 'NATS URL, when your nodes use JetStream signals (default: none)')
    .option(
      '--signals <kind>',
      'jetstream | redis-streams | none (default: jetstream with --nats, else redis-streams)',
    )
    .option('--thread <id>', "with --all: only this thread's dead letters")
    .option('--all', 'every dead letter (up to --limit)')
    .option('--limit <n>', `with --all: at most this many, 1..${DLQ_MAX_ALL}`, '1000')
    .option('--older-than <age>', 'with --all: only those dead for longer than this (30m, 12h, 7d)')
    .option('--reset-attempts', 'give them their full max_attempts again (default: one more attempt)')
    .action(
      async (
        ids: string[],
        raw: Connection & {
          thread?: string;
          all?: boolean;
          limit?: string;
          olderThan?: string;
          resetAttempts?: boolean;
        },
      ) => {
        const targets = targetsFrom(ids, raw);
        const report = await withStore(raw, true, (store) =>
          retryDeadLetters(store, { thread: raw.thread ?? null }, targets, raw.resetAttempts === true),
        );
        print({ namespace: raw.namespace ?? null, requeued: report.done.length, ...report });
        setExit(report.failed.length === 0 ? 0 : 1);
      },
    );

  connectionOptions(dlq.command('purge'))
    .description('delete dead letters for good')
    .argument('[dispatch-ids...]')
    .option('--thread <id>', "with --all: only this thread's dead letters")
    .option('--all', 'every dead letter (up to --limit)')
    .option('--limit <n>', `with --all: at most this many, 1..${DLQ_MAX_ALL}`, '1000')
    .option('--older-than <age>', 'with --all: only those dead for longer than this (30m, 12h, 7d)')
    .action(
      async (
        ids: string[],
        raw: Connection & { thread?: string; all?: boolean; limit?: string; olderThan?: string },
      ) => {
        const targets = targetsFrom(ids, raw);
        const report = await withStore(raw, false, (store) =>
          purgeDeadLetters(store, { thread: raw.thread ?? null }, targets),
        );
        print({ namespace: raw.namespace ?? null, purged: report.done.length, ...report });
        setExit(report.failed.length === 0 ? 0 : 1);
      },
    );
}

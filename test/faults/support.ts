/**
 * Shared helpers of the fault tests: bounded waiting, server bookkeeping (every spawned server is stopped by
 * PID, even when a test fails), a worker-node child process (test/faults/fixtures/worker-node.ts) that speaks
 * JSON lines, and small store readers.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { StorageErrorKind } from '../../src/contract/errors.js';
import { StorageError } from '../../src/contract/errors.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { RunAbortedError } from '../../src/mailbox/errors.js';
import type { Executor } from '../../src/mailbox/types.js';
import type { SpawnedServer } from '../support/servers.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WORKER_FIXTURE = fileURLToPath(new URL('./fixtures/worker-node.ts', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what` and the
 * last value or error seen). Errors thrown by `check` count as "not yet".
 */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const shown = last instanceof Error ? `${last.name}: ${last.message}` : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${shown})`);
    }
    await sleep(intervalMs);
  }
}

/** Marker for a call that did not settle in time. */
export class HangError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not settle within ${ms} ms`);
    this.name = 'HangError';
  }
}

/** Settle `promise` or reject with `HangError` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(what, ms)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

/** The outcome of one call: a value, or the error it threw, with how long it took. */
export type Outcome<T> = { ok: true; value: T; ms: number } | { ok: false; error: unknown; ms: number };

export async function attempt<T>(fn: () => Promise<T>, hangMs: number, what = 'call'): Promise<Outcome<T>> {
  const started = Date.now();
  try {
    const value = await within(Promise.resolve().then(fn), hangMs, what);
    return { ok: true, value, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, error, ms: Date.now() - started };
  }
}

export function errorKind(err: unknown): StorageErrorKind | 'not-a-StorageError' {
  return err instanceof StorageError ? err.kind : 'not-a-StorageError';
}

export function describeError(err: unknown): string {
  if (err instanceof StorageError) return `StorageError(${err.kind}): ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Every server a test file spawned, stopped by PID in `afterAll` whatever happened. */
export class Servers {
  readonly #all: SpawnedServer[] = [];

  add<S extends SpawnedServer>(server: S): S {
    this.#all.push(server);
    return server;
  }

  async stopAll(): Promise<void> {
    const all = this.#all.splice(0);
    await Promise.allSettled(all.map((s) => s.stop()));
  }
}

/** Close and tear down stores even when some of them are broken. */
export async function disposeStores(
  stores: readonly (MailboxStore & { destroyNamespace?(): Promise<void> })[],
  destroy = true,
): Promise<void> {
  for (const store of stores) {
    if (destroy && store.destroyNamespace) {
      await within(store.destroyNamespace(), 10_000, 'destroyNamespace').catch(() => undefined);
    }
    await within(store.close(), 10_000, 'close').catch(() => undefined);
  }
}

export async function loadAll(
  store: MailboxStore,
  ids: readonly string[],
): Promise<Map<string, RunDispatch | null>> {
  const out = new Map<string, RunDispatch | null>();
  for (const id of ids) out.set(id, await store.loadDispatch(id));
  return out;
}

// ---- worker node (child process) ----

/** Arguments of test/faults/fixtures/worker-node.ts (passed as one JSON argv). */
export interface WorkerNodeConfig {
  redis: string;
  nats?: string;
  signals?: 'jetstream' | 'redis-streams' | 'none';
  namespace: string;
  consumerId: string;
  leaseMs: number;
  /** How long the executor runs; 0 = until its AbortSignal fires or a `{"finish": id}` command (at most `maxRunMs`). */
  runMs: number;
  maxRunMs?: number;
  /** Lease renewal interval (default: the Mailbox's, a third of the lease). */
  renewalIntervalMs?: number;
  /** Mailbox sweep interval (reclaim of expired leases). */
  sweepIntervalMs?: number;
}

/** One JSON line a worker node printed. */
export interface NodeEvent {
  event: string;
  dispatchId?: string;
  threadId?: string;
  claimToken?: string | null;
  attempt?: number;
  reason?: string | null;
  status?: string;
  name?: string;
  method?: string;
  ok?: boolean;
  result?: unknown;
  errorKind?: string;
  error?: string;
  at: number;
}

export interface WorkerNode {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  readonly events: NodeEvent[];
  readonly exited: Promise<void>;
  stderr(): string;
  /** Send one command line (`{"submitBackground": {...}}`, `{"stop": true}`). */
  send(command: unknown): void;
  waitFor(predicate: (e: NodeEvent) => boolean, timeoutMs: number, what: string): Promise<NodeEvent>;
  waitForCount(
    predicate: (e: NodeEvent) => boolean,
    n: number,
    timeoutMs: number,
    what: string,
  ): Promise<NodeEvent[]>;
  kill(signal: NodeJS.Signals): void;
}

const liveChildren = new Set<ChildProcessWithoutNullStreams>();

/** SIGKILL every worker node still running (afterAll). */
export function killAllNodes(): void {
  for (const child of liveChildren) {
    try {
      if (child.pid) process.kill(child.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    child.kill('SIGKILL');
  }
  liveChildren.clear();
}

export async function startWorkerNode(config: WorkerNodeConfig, readyMs = 30_000): Promise<WorkerNode> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER_FIXTURE, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: 'pipe',
  });
  liveChildren.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => liveChildren.delete(child));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const events: NodeEvent[] = [];
  const listeners = new Set<() => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    let parsed: NodeEvent;
    try {
      parsed = JSON.parse(line) as NodeEvent;
    } catch {
      return;
    }
    events.push(parsed);
    for (const l of listeners) l();
  });

  const waitFor = (
    predicate: (e: NodeEvent) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<NodeEvent> => waitForCount(predicate, 1, timeoutMs, what).then((found) => found[0]!);

  const waitForCount = (
    predicate: (e: NodeEvent) => boolean,
    n: number,
    timeoutMs: number,
    what: string,
  ): Promise<NodeEvent[]> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = events.filter(predicate);
        if (found.length >= n) {
          cleanup();
          resolve(found);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `worker node: timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${stderr.slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      const onExit = (): void => {
        if (!check()) {
          cleanup();
          reject(new Error(`worker node exited while waiting for ${what}; stderr: ${stderr.slice(-2000)}`));
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        child.off('exit', onExit);
      };
      const listener = (): void => void check();
      if (check()) return;
      listeners.add(listener);
      child.once('exit', onExit);
    });

  const node: WorkerNode = {
    child,
    pid: child.pid ?? -1,
    events,
    exited,
    stderr: () => stderr,
    send(command) {
      child.stdin.write(`${JSON.stringify(command)}\n`);
    },
    waitFor,
    waitForCount,
    kill(signal) {
      if (child.pid) process.kill(child.pid, signal);
    },
  };
  await waitFor((e) => e.event === 'ready', readyMs, 'ready');
  return node;
}

// ---- in-test executors ----

/** One executor invocation, as the tests' execution log records it. */
export interface ExecRecord {
  node: string;
  dispatchId: string;
  threadId: string;
  attempt: number;
  claimToken: string | null;
  startedAt: number;
  endedAt?: number;
  /** `completed` = returned normally; `aborted:<reason>` = its AbortSignal fired first. */
  outcome?: string;
}

/** An executor that logs every run into `log`, runs `runMs` (or until aborted) and completes. */
export function recordingExecutor(node: string, log: ExecRecord[], runMs: number): Executor {
  return async (ctx) => {
    const rec: ExecRecord = {
      node,
      dispatchId: ctx.dispatch.dispatch_id,
      threadId: ctx.dispatch.thread_id,
      attempt: ctx.attempt,
      claimToken: ctx.dispatch.claim_token,
      startedAt: Date.now(),
    };
    log.push(rec);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, runMs);
      ctx.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
    rec.endedAt = Date.now();
    if (ctx.signal.aborted) {
      const reason: unknown = ctx.signal.reason;
      rec.outcome = `aborted:${reason instanceof RunAbortedError ? reason.reason : String(reason)}`;
      throw reason;
    }
    rec.outcome = 'completed';
    return { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
  };
}

/** How many times each dispatch id occurs in `items`. */
export function countBy<T>(items: readonly T[], key: (t: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
  return out;
}

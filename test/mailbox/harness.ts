/**
 * Shared pieces of the Mailbox tests: backends (memory, Redis + JetStream, Redis + Redis Streams), a scriptable
 * recording executor, and waiting helpers that poll instead of assuming timings.
 */
import { performance } from 'node:perf_hooks';
import { StorageError } from '../../src/contract/errors.js';
import type { MailboxStore } from '../../src/contract/store.js';
import type { LiveRunCommand, RunDispatch } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/create-store.js';
import { Mailbox, abortReasonOf } from '../../src/mailbox/index.js';
import type {
  AbortReason,
  ExecutorContext,
  ExecutorOutcome,
  MailboxConfig,
  MailboxOptions,
} from '../../src/mailbox/index.js';
import { natsUrl, redisUrl, testNamespace } from '../support/servers.js';
import { eventually } from './wait.js';

export { eventually };

/** `memory-polling`: the memory store without signals, so the Mailbox falls back to its idle poll. */
export type BackendKind = 'memory' | 'memory-polling' | 'jetstream' | 'redis-streams';

export interface Backend {
  kind: BackendKind;
  distributed: boolean;
  /** Memory: the one shared store. Distributed: a new connection to the shared namespace (one per "node"). */
  openStore(): Promise<MailboxStore>;
  /** What a child process needs to open the same store. */
  connection: {
    redis: string;
    nats: string;
    namespace: string;
    signals: 'jetstream' | 'redis-streams';
  } | null;
  cleanup(): Promise<void>;
}

interface DestroyableStore extends MailboxStore {
  destroyNamespace(): Promise<void>;
}

export async function openBackend(kind: BackendKind, label: string): Promise<Backend> {
  if (kind === 'memory' || kind === 'memory-polling') {
    // Loaded on demand so the distributed suites do not depend on the memory module.
    const { MemoryMailboxStore } = await import('../../src/memory/index.js');
    const store = new MemoryMailboxStore(
      kind === 'memory' ? { sweepIntervalMs: 200, republishAfterMs: 1000 } : { signals: false },
    );
    return {
      kind,
      distributed: false,
      openStore: () => Promise.resolve(store),
      connection: null,
      cleanup: () => store.close(),
    };
  }
  const connection = {
    redis: await redisUrl(),
    nats: await natsUrl(),
    namespace: testNamespace(`${label}-${kind === 'jetstream' ? 'js' : 'rs'}`),
    signals: kind,
  };
  const stores: DestroyableStore[] = [];
  return {
    kind,
    distributed: true,
    connection,
    openStore: async () => {
      const store = await createMailboxStore({ ...connection, sweepIntervalMs: 200, republishAfterMs: 1000 });
      stores.push(store);
      return store;
    },
    cleanup: async () => {
      const [first] = stores;
      if (first) await first.destroyNamespace().catch(() => undefined);
      for (const s of stores) await s.close().catch(() => undefined);
    },
  };
}

/** Short intervals so tests stay fast; every test can override. */
export const FAST_CONFIG: Partial<MailboxConfig> = {
  leaseMs: 3_000,
  leaseRenewalIntervalMs: 500,
  sweepIntervalMs: 200,
  gcIntervalMs: 1_000,
  defaultRetryDelayMs: 250,
  maxRetryDelayMs: 2_000,
  signalFetchExpiresMs: 100,
  signalNackBaseDelayMs: 50,
  signalNackMaxDelayMs: 500,
  remoteCancelWaitMs: 4_000,
  stopGraceMs: 1_000,
  idlePollIntervalMs: 50,
};

export interface Execution {
  dispatchId: string;
  threadId: string;
  runId: string;
  attempt: number;
  instanceId: string;
  consumer: string;
  start: number;
  end: number | null;
  /** Wall clock (ms) at start/end, for comparisons with store timestamps. */
  startedAt: number;
  endedAt: number | null;
  abortReason: AbortReason | null;
  commands: LiveRunCommand[];
}

/** How one execution behaves; chosen per run id (or the default). */
export type Behaviour = (ctx: ExecutorContext, exec: Execution) => Promise<ExecutorOutcome>;

export const behaviours = {
  quick:
    (ms = 0): Behaviour =>
    async (ctx) => {
      if (ms > 0) await abortableSleep(ms, ctx.signal);
      return { kind: 'completed', status: 'done', termination: { type: 'natural_end' }, response: 'ok' };
    },
  /** Runs until aborted (at most `maxMs`), acking and keeping every live command. */
  untilAborted:
    (maxMs = 20_000): Behaviour =>
    async (ctx) => {
      await abortableSleep(maxMs, ctx.signal);
      return ctx.signal.aborted
        ? { kind: 'completed', status: 'done', termination: { type: 'cancelled' } }
        : { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
    },
  /** Ends once the run received a live command (the recorder acks and keeps it), or after `maxMs`. */
  untilCommanded:
    (maxMs = 10_000): Behaviour =>
    async (ctx, exec) => {
      for (let waited = 0; exec.commands.length === 0 && waited < maxMs; waited += 10) {
        await abortableSleep(10, ctx.signal);
      }
      return { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
    },
  /** Ignores its AbortSignal entirely for `ms`. */
  stubborn:
    (ms: number): Behaviour =>
    async () => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
    },
};

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** An executor that records every execution and behaves per run id. */
export class Recorder {
  readonly executions: Execution[] = [];
  readonly #byRun = new Map<string, Behaviour>();
  /** Runs whose executor never looks at `ctx.commands` (as the README's example executor). */
  readonly #deaf = new Set<string>();
  #fallback: Behaviour;

  constructor(fallback: Behaviour = behaviours.quick()) {
    this.#fallback = fallback;
  }

  on(runId: string, behaviour: Behaviour): this {
    this.#byRun.set(runId, behaviour);
    return this;
  }

  otherwise(behaviour: Behaviour): this {
    this.#fallback = behaviour;
    return this;
  }

  /** The executor of `runId` never reads its live commands. */
  deaf(runId: string): this {
    this.#deaf.add(runId);
    return this;
  }

  executor(consumer: string): MailboxOptions['executor'] {
    return async (ctx) => {
      const exec: Execution = {
        dispatchId: ctx.dispatch.dispatch_id,
        threadId: ctx.dispatch.thread_id,
        runId: ctx.dispatch.run_id,
        attempt: ctx.attempt,
        instanceId: ctx.instanceId,
        consumer,
        start: performance.now(),
        end: null,
        startedAt: Date.now(),
        endedAt: null,
        abortReason: null,
        commands: [],
      };
      this.executions.push(exec);
      const consume = this.#deaf.has(ctx.dispatch.run_id)
        ? null
        : (async () => {
            for await (const entry of ctx.commands) {
              exec.commands.push(entry.command);
              await entry.receipt.ack();
            }
          })();
      try {
        return await (this.#byRun.get(ctx.dispatch.run_id) ?? this.#fallback)(ctx, exec);
      } finally {
        exec.abortReason = abortReasonOf(ctx.signal);
        exec.end = performance.now();
        exec.endedAt = Date.now();
        void consume;
      }
    };
  }

  ofRun(runId: string): Execution[] {
    return this.executions.filter((e) => e.runId === runId);
  }

  ofDispatch(dispatchId: string): Execution[] {
    return this.executions.filter((e) => e.dispatchId === dispatchId);
  }
}

export function newMailbox(
  store: MailboxStore,
  recorder: Recorder,
  consumerId: string,
  config: Partial<MailboxConfig> = {},
  extra: Partial<MailboxOptions> = {},
): Mailbox {
  return new Mailbox({
    store,
    executor: recorder.executor(consumerId),
    consumerId,
    config: { ...FAST_CONFIG, ...config },
    ...extra,
  });
}

export async function loadStatus(
  store: MailboxStore,
  dispatchId: string,
  status: RunDispatch['status'],
  timeoutMs = 10_000,
): Promise<RunDispatch> {
  return eventually(
    `dispatch ${dispatchId} to be ${status}`,
    async () => {
      const d = await store.loadDispatch(dispatchId);
      return d?.status === status ? d : undefined;
    },
    timeoutMs,
  );
}

/** Collects a Mailbox's events for later assertions. */
export function collectEvents(mailbox: Mailbox): { name: string; dispatch: RunDispatch; extra: unknown[] }[] {
  const seen: { name: string; dispatch: RunDispatch; extra: unknown[] }[] = [];
  for (const name of [
    'claimed',
    'started',
    'completed',
    'retried',
    'deadLettered',
    'superseded',
    'cancelled',
  ] as const) {
    mailbox.on(name, (dispatch: RunDispatch, ...extra: unknown[]) => seen.push({ name, dispatch, extra }));
  }
  return seen;
}

/**
 * `store` with one method failing: `failing(call)` says, per call number (1, 2, ...), whether that call
 * throws an `Io` error instead of reaching the store. Every other method goes straight through (private
 * fields need the real `this`), and the store keeps its fused / hand-back brands.
 */
export function faultyStore<S extends MailboxStore>(
  store: S,
  method: keyof S & string,
  failing: (call: number) => boolean,
): S & { calls(): number } {
  let calls = 0;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'calls') return () => calls;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop === method) {
        return (...fnArgs: unknown[]) => {
          calls++;
          if (failing(calls)) return Promise.reject(StorageError.io(`injected ${method} failure #${calls}`));
          return (value as (...a: unknown[]) => unknown).apply(target, fnArgs);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  }) as S & { calls(): number };
}

/** The most executions that overlapped in time (by their start/end). */
export function maxOverlap(executions: readonly Execution[]): number {
  const edges: [number, number][] = [];
  for (const e of executions) {
    edges.push([e.start, 1]);
    edges.push([e.end ?? Number.POSITIVE_INFINITY, -1]);
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let max = 0;
  for (const [, delta] of edges) {
    current += delta;
    max = Math.max(max, current);
  }
  return max;
}

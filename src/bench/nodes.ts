/**
 * The coordinator's view of its worker nodes: child processes (distributed backends) or in-process BenchNodes
 * (the memory store cannot be shared across processes). Both deliver protocol messages to one handler.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { MailboxStore } from '../contract/store.js';
import type { MailboxConfig } from '../mailbox/types.js';
import { BenchNode } from './node.js';
import type { NodeConfig } from './node-config.js';
import { encodeMessage, parseNodeMessage } from './protocol.js';
import type { NodeMessage } from './protocol.js';
import type { RunMsDistribution } from './run-ms.js';

export type MessageHandler = (node: string, msg: NodeMessage) => void;

export interface NodeHandle {
  readonly id: string;
  /** The OS process id, or null for an in-process node. */
  readonly pid: number | null;
  /** Resolves once the node's Mailbox (or worker) runs; rejects if it fails to start. */
  readonly ready: Promise<void>;
  /** Graceful stop; after `graceMs` a process is SIGKILLed. Resolves once every message it sent was handled. */
  stop(graceMs: number): Promise<void>;
  /** SIGKILL the node; false when the node cannot be killed (in-process). */
  kill(): boolean;
  /** Resolves when the node is gone, however it ended (never for in-process nodes before `stop`). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Malformed lines received (should stay 0). */
  readonly malformed: number;
  /** The last few KB of the node's stderr, for error reports. */
  stderrTail(): string;
  /**
   * The node process's `process.cpuUsage()` (microseconds since it started), asked over the protocol; null for
   * an in-process node (its CPU is the coordinator's) or when the node does not answer within `timeoutMs`
   * (killed, stopping).
   */
  cpuUsage(timeoutMs: number): Promise<NodeJS.CpuUsage | null>;
}

const STDERR_TAIL = 4096;
const READY_TIMEOUT_MS = 30_000;

/** How to start node-main: through tsx when running from sources, plain node when compiled. */
export function nodeEntry(): { script: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return {
      script: join(dirname(here), 'node-main.ts'),
      execArgv: ['--import', import.meta.resolve('tsx')],
    };
  }
  return { script: join(dirname(here), 'node-main.js'), execArgv: [] };
}

export function spawnNodeProcess(config: NodeConfig, onMessage: MessageHandler): NodeHandle {
  const { script, execArgv } = nodeEntry();
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    // AWAKEN_BENCH_NODE_ARGS: extra Node flags for the node processes, e.g. `--cpu-prof --cpu-prof-dir=prof`
    // (Node refuses --cpu-prof in NODE_OPTIONS).
    [
      ...execArgv,
      ...(process.env.AWAKEN_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
      script,
      JSON.stringify(config),
    ],
    {
      stdio: 'pipe',
      env: process.env,
    },
  );
  let readyResolve!: () => void;
  let readyReject!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  let stderr = '';
  let malformed = 0;
  // Answers to `cpu` requests arrive in request order on the one stdout pipe.
  const cpuWaiters: ((usage: NodeJS.CpuUsage | null) => void)[] = [];
  let exitResolve!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (r) => (exitResolve = r),
  );
  child.once('exit', (code, signal) => exitResolve({ code, signal }));
  child.on('error', (err) => {
    readyReject(new Error(`node ${config.node} could not be started: ${err.message}`));
    if (child.pid === undefined) exitResolve({ code: null, signal: null }); // never ran: no 'exit' will come
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL);
  });
  child.stdin.on('error', () => {
    // The node may already be gone (killed); writes to its stdin are best effort.
  });
  const drained = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout })
      .on('line', (line) => {
        const msg = parseNodeMessage(line);
        if (!msg) {
          malformed += 1;
          return;
        }
        onMessage(config.node, msg);
        if (msg.t === 'cpu') cpuWaiters.shift()?.({ user: msg.user, system: msg.system });
        if (msg.t === 'ready') readyResolve();
        if (msg.t === 'error') readyReject(new Error(`node ${config.node}: ${msg.message}`));
      })
      .on('close', () => {
        for (const waiter of cpuWaiters.splice(0)) waiter(null);
        resolve();
      });
  });
  const timer = setTimeout(
    () => readyReject(new Error(`node ${config.node} not ready within ${READY_TIMEOUT_MS} ms`)),
    READY_TIMEOUT_MS,
  );
  timer.unref();
  void ready.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  void exited.then(() =>
    readyReject(new Error(`node ${config.node} exited before it was ready: ${stderr.trim()}`)),
  );
  let stopping: Promise<void> | null = null;

  return {
    id: config.node,
    get pid() {
      return child.pid ?? null;
    },
    ready,
    exited,
    get malformed() {
      return malformed;
    },
    stderrTail: () => stderr,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return true;
    },
    cpuUsage(timeoutMs) {
      if (child.exitCode !== null || child.signalCode !== null || stopping || !child.stdin.writable) {
        return Promise.resolve(null);
      }
      return new Promise((resolve) => {
        let settled = false;
        const waiter = (usage: NodeJS.CpuUsage | null): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(usage);
        };
        const timer = setTimeout(() => {
          // A late answer must not be taken for the next request's: the slot stays queued, answered by nobody.
          waiter(null);
        }, timeoutMs);
        cpuWaiters.push(waiter);
        child.stdin.write(encodeMessage({ t: 'cpu' }));
      });
    },
    stop(graceMs) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.stdin.write(encodeMessage({ t: 'stop' }));
          child.stdin.end();
          const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(killer);
        }
        await drained;
      })();
      return stopping;
    },
  };
}

export interface InProcessNodeOptions {
  nodeId: string;
  store: MailboxStore;
  runMs: RunMsDistribution;
  failRate: number;
  liveRate: number;
  interruptRate: number;
  mailboxConfig: Partial<MailboxConfig>;
}

/** A node sharing the coordinator's process and store (memory backend). */
export function startInProcessNode(opts: InProcessNodeOptions, onMessage: MessageHandler): NodeHandle {
  const node = new BenchNode({ ...opts, emit: (msg) => onMessage(opts.nodeId, msg) });
  const ready = node
    .start()
    .then(() => onMessage(opts.nodeId, { t: 'ready', node: opts.nodeId, pid: process.pid }));
  let stopping: Promise<void> | null = null;
  let stoppedResolve!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (r) => (stoppedResolve = r),
  );
  return {
    id: opts.nodeId,
    pid: null,
    ready,
    exited,
    malformed: 0,
    stderrTail: () => '',
    kill: () => false,
    cpuUsage: () => Promise.resolve(null),
    stop() {
      stopping ??= (async () => {
        await ready.catch(() => undefined);
        await node.stop();
        onMessage(opts.nodeId, { t: 'stopped', node: opts.nodeId });
        stoppedResolve({ code: 0, signal: null });
      })();
      return stopping;
    },
  };
}

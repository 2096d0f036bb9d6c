/**
 * A bench worker node in its own process:
 *
 *   node --import tsx src/bench/node-main.ts '<NodeConfig JSON>'      (or dist/src/bench/node-main.js)
 *
 * Mailbox mode runs a BenchNode on its own connection to the shared Redis (+ NATS) namespace; BullMQ and GroupMQ
 * modes run that queue's worker with the same simulated executor for the `--baseline` peers. Protocol messages
 * go to stdout (protocol.ts), diagnostics to stderr. Stops gracefully on a `stop` line, on SIGTERM, or when
 * stdin closes; answers a `cpu` line with its `process.cpuUsage()`.
 */
import { createInterface } from 'node:readline';
import { openStore } from './backend.js';
import type { BenchStore } from './backend.js';
import { startBullmqWorker } from './bullmq-worker.js';
import { startGroupmqWorker } from './groupmq-worker.js';
import { echoSubject, startEchoResponder } from './nats-echo.js';
import { BenchNode } from './node.js';
import { parseNodeConfig } from './node-config.js';
import type { NodeConfig } from './node-config.js';
import { encodeMessage, parseCoordinatorMessage } from './protocol.js';
import type { NodeMessage } from './protocol.js';
import { parseRunMs } from './run-ms.js';

// Messages are batched per event-loop turn: one pipe write per message cost the node processes ~17 % of
// their CPU at a few thousand dispatches/s (measured with --cpu-prof), charged to the mailbox under test.
// Every message carries its own timestamps, so batching does not move any measured latency.
let outbox: string[] = [];
let flushScheduled = false;
const flush = (): void => {
  flushScheduled = false;
  if (outbox.length === 0) return;
  const chunk = outbox.join('');
  outbox = [];
  process.stdout.write(chunk);
};
const emit = (msg: NodeMessage): void => {
  outbox.push(encodeMessage(msg));
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
};
const exitNow = (code: number): never => {
  flush();
  process.exit(code);
};

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function startNode(config: NodeConfig): Promise<() => Promise<void>> {
  const runMs = parseRunMs(config.runMs);
  if (config.mode === 'bullmq') {
    return startBullmqWorker({ ...config, runMs, emit });
  }
  if (config.mode === 'groupmq') {
    return startGroupmqWorker({ ...config, runMs, emit });
  }
  const store: BenchStore = await openStore(
    {
      kind: 'redis',
      redis: config.redis,
      nats: config.nats,
      signals: config.signals,
      namespace: config.namespace,
    },
    config.store,
  );
  const node = new BenchNode({
    nodeId: config.node,
    store,
    runMs,
    failRate: config.failRate,
    liveRate: config.liveRate,
    interruptRate: config.interruptRate,
    mailboxConfig: config.mailbox,
    emit,
    logger: {
      warn: (msg, fields) =>
        process.stderr.write(`[${config.node} warn] ${msg} ${fields ? JSON.stringify(fields) : ''}\n`),
      error: (msg, fields) =>
        process.stderr.write(`[${config.node} error] ${msg} ${fields ? JSON.stringify(fields) : ''}\n`),
    },
  });
  await node.start();
  // The raw request-reply yardstick the coordinator compares the live round trip with (nats-echo.ts).
  const stopEcho = config.nats
    ? await startEchoResponder(config.nats, echoSubject(config.namespace, config.node))
    : null;
  return async () => {
    await node.stop();
    await stopEcho?.();
    await store.close();
  };
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) {
    process.stderr.write("usage: node-main.ts '<NodeConfig JSON>'\n");
    process.exit(2);
  }
  const config = parseNodeConfig(arg);
  let stopping: Promise<void> | null = null;
  let stopFn: (() => Promise<void>) | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        if (stopFn) await stopFn();
      } catch (err) {
        emit({ t: 'error', node: config.node, message: `stop failed: ${describe(err)}` });
      }
      emit({ t: 'stopped', node: config.node });
      exitNow(0);
    })();
    return stopping;
  };
  // A stop before the node is up exits at once (nothing to drain yet).
  process.once('SIGTERM', () => void stop());
  // Ctrl-C reaches the whole process group: the coordinator decides when nodes stop (it sends `stop`).
  process.on('SIGINT', () => {});
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      const msg = parseCoordinatorMessage(line);
      if (msg?.t === 'stop') void stop();
      else if (msg?.t === 'cpu') emit({ t: 'cpu', node: config.node, ...process.cpuUsage() });
    })
    .on('close', () => void stop());

  try {
    stopFn = await startNode(config);
  } catch (err) {
    emit({ t: 'error', node: config.node, message: `start failed: ${describe(err)}` });
    exitNow(1);
  }
  emit({ t: 'ready', node: config.node, pid: process.pid });
}

void main();

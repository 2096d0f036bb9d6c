/**
 * A minimal agent runtime on awaken-mailbox: it plugs an executor into a Mailbox, submits a few runs, steers one
 * with a live message, interrupts one with a newer request, cancels one, and stops cleanly.
 *
 *   npx tsx examples/basic-runtime.ts                                  # in-memory store
 *   REDIS_URL=redis://127.0.0.1:6379 NATS_URL=nats://127.0.0.1:4222 npx tsx examples/basic-runtime.ts
 *
 * With REDIS_URL the example uses the distributed store (JetStream signals and live steering when NATS_URL is
 * set, Redis Streams signals otherwise) in a throwaway namespace that it deletes at the end.
 */
import { randomBytes } from 'node:crypto';
// In an application: `from 'awaken-mailbox'`.
import { Mailbox, MemoryMailboxStore, PermanentError, createMailboxStore } from '../src/index.js';
import type { Executor, MailboxStore, Message, QueuedMessages } from '../src/index.js';

const started = Date.now();
const log = (line: string): void => console.log(`${String(Date.now() - started).padStart(5)} ms  ${line}`);

/** The runtime's own state: messages per run (a real runtime keeps these in its run store). */
const inboxes = new Map<string, Message[]>();

function textOf(messages: Message[]): string {
  return messages
    .flatMap((m) => m.content)
    .map((block) => (block.type === 'text' ? block.text : `[${block.type}]`))
    .join(' / ');
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The "agent": works in steps, takes live messages between steps, stops when its AbortSignal fires (cancel,
 * interrupt, lost lease, shutdown), and reports how the run ended. Throwing a plain Error asks for a retry with
 * backoff; throwing PermanentError dead-letters the dispatch.
 */
const executor: Executor = async (ctx) => {
  const { run_id: runId, thread_id: threadId } = ctx.dispatch;
  if (runId === 'misconfigured') throw new PermanentError('agent "ghost" not found');
  const steered: Message[] = [];
  const accept = (async () => {
    for await (const entry of ctx.commands) {
      if (typeof entry.command === 'object' && 'Messages' in entry.command) {
        steered.push(...entry.command.Messages);
        await entry.receipt.ack(); // accepted: the sender sees "live"
      }
    }
  })();
  const queued = inboxes.get(runId) ?? [];
  log(
    `run ${runId} on ${threadId} starts (attempt ${ctx.attempt})${queued.length ? `: "${textOf(queued)}"` : ''}`,
  );
  for (let step = 1; step <= 4 && !ctx.signal.aborted; step++) {
    await pause(60, ctx.signal);
    if (steered.length > 0) log(`run ${runId} took a live message: "${textOf(steered.splice(0))}"`);
  }
  void accept;
  if (ctx.signal.aborted) {
    const why = (ctx.signal.reason as { reason?: string } | undefined)?.reason ?? 'aborted';
    log(`run ${runId} stopped early (${why})`);
    return { kind: 'completed', status: 'done', termination: { type: 'cancelled' } };
  }
  return {
    kind: 'completed',
    status: 'done',
    termination: { type: 'natural_end' },
    response: `done: ${runId}`,
  };
};

interface OpenedStore {
  store: MailboxStore;
  describe: string;
  close(): Promise<void>;
}

async function openStore(): Promise<OpenedStore> {
  const redis = process.env.REDIS_URL;
  if (!redis) {
    const store = new MemoryMailboxStore();
    return { store, describe: 'in-memory store', close: () => store.close() };
  }
  const nats = process.env.NATS_URL;
  const namespace = `example-${randomBytes(4).toString('hex')}`;
  const store = await createMailboxStore({ redis, ...(nats ? { nats } : {}), namespace });
  return {
    store,
    describe: `Redis${nats ? ' + NATS (JetStream signals, live steering)' : ' (Redis Streams signals)'}, namespace ${namespace}`,
    close: async () => {
      await store.destroyNamespace();
      await store.close();
    },
  };
}

async function main(): Promise<void> {
  const opened = await openStore();
  log(`using the ${opened.describe}`);

  const mailbox = new Mailbox({
    store: opened.store,
    executor,
    consumerId: 'example-node',
    config: { stopGraceMs: 2_000, sweepIntervalMs: 1_000 },
    // Messages nobody could take live become a durable run; the runtime keeps them for that run.
    messageSink: (queued: QueuedMessages) => void inboxes.set(queued.runId, queued.messages),
  });
  const outcomes = new Map<string, string>();
  mailbox.on('completed', (d) => {
    outcomes.set(d.run_id, `completed (${d.termination?.type ?? 'no termination'})`);
    log(`dispatch of ${d.run_id} acked: ${d.run_response ?? d.termination?.type}`);
  });
  mailbox.on('retried', (d, error, retryAt) =>
    log(`run ${d.run_id} will retry in ${retryAt - Date.now()} ms: ${error}`),
  );
  mailbox.on('deadLettered', (d, error) => {
    outcomes.set(d.run_id, 'dead-lettered');
    log(`run ${d.run_id} dead-lettered: ${error}`);
  });
  mailbox.on('superseded', (d) => {
    outcomes.set(d.run_id, 'superseded');
    log(`run ${d.run_id} superseded (${d.last_error})`);
  });
  mailbox.on('cancelled', (d) => {
    outcomes.set(d.run_id, 'cancelled while queued');
    log(`run ${d.run_id} cancelled while queued`);
  });
  await mailbox.start();

  // Background work: two runs on one thread run one after the other; a third thread runs in parallel.
  await mailbox.submitBackground({ threadId: 'support-chat', runId: 'answer-1' });
  await mailbox.submitBackground({ threadId: 'support-chat', runId: 'answer-2' });
  await mailbox.submitBackground({ threadId: 'research', runId: 'survey' });
  await mailbox.submitBackground({ threadId: 'ops', runId: 'misconfigured' });
  const doomed = await mailbox.submitBackground({ threadId: 'support-chat', runId: 'answer-3' });

  // Steer the running run of a thread with a live message.
  await new Promise((resolve) => setTimeout(resolve, 80));
  const steer: Message = { role: 'user', content: [{ type: 'text', text: 'please keep it short' }] };
  log(`sendMessages to support-chat → ${await mailbox.sendMessages('support-chat', [steer])}`);

  // Cancel a queued run before it starts.
  log(`cancel ${doomed.runId} → ${await mailbox.cancel(doomed.runId)}`);

  // A newer foreground request on "research" interrupts the survey in progress and runs at once.
  const urgent = await mailbox.submit({ threadId: 'research', runId: 'urgent-question' });
  log(`submit urgent-question → ${urgent.status}`);

  // A message for a thread with nothing running becomes a durable run.
  const note: Message = {
    id: 'note-1',
    role: 'user',
    content: [{ type: 'text', text: 'remember the meeting' }],
  };
  log(`sendMessages to notes → ${await mailbox.sendMessages('notes', [note])}`);

  const expected = [
    'answer-1',
    'answer-2',
    'answer-3',
    'survey',
    'misconfigured',
    'urgent-question',
    'durable-msg-note-1',
  ];
  const deadline = Date.now() + 10_000;
  while (expected.some((run) => !outcomes.has(run)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  await mailbox.stop();
  await opened.close();
  log('stopped');
  for (const run of expected) console.log(`  ${run.padEnd(20)} ${outcomes.get(run) ?? 'NOT FINISHED'}`);
  if (expected.some((run) => !outcomes.has(run))) process.exitCode = 1;
}

await main();

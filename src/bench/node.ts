/**
 * One bench worker node: a Mailbox with the simulated executor on a given store, reporting its execution log and
 * Mailbox events as protocol messages. Used in-process (memory backend) and inside node processes (node-main.ts).
 */
import type { MailboxStore } from '../contract/store.js';
import { Mailbox } from '../mailbox/index.js';
import type { MailboxConfig } from '../mailbox/types.js';
import type { Logger } from '../util/logger.js';
import type { NodeMessage } from './protocol.js';
import type { RunMsDistribution } from './run-ms.js';
import { simulatedExecutor } from './simulated-executor.js';

export interface BenchNodeOptions {
  nodeId: string;
  store: MailboxStore;
  runMs: RunMsDistribution;
  failRate: number;
  liveRate: number;
  interruptRate: number;
  mailboxConfig: Partial<MailboxConfig>;
  emit(msg: NodeMessage): void;
  logger?: Logger;
}

export class BenchNode {
  private readonly mailbox: Mailbox;
  private stopped: Promise<void> | null = null;

  constructor(private readonly opts: BenchNodeOptions) {
    const { emit } = opts;
    const executor = simulatedExecutor({
      runMs: opts.runMs,
      failRate: opts.failRate,
      liveRate: opts.liveRate,
      interruptRate: opts.interruptRate,
      onStart: (ctx, at, flags) =>
        emit({
          t: 'start',
          d: ctx.dispatch.dispatch_id,
          th: ctx.dispatch.thread_id,
          r: ctx.dispatch.run_id,
          c: ctx.dispatch.claim_token ?? '',
          i: ctx.instanceId,
          a: ctx.attempt,
          at,
          ...(flags.steer ? { l: true } : {}),
          ...(flags.hold ? { x: true } : {}),
        }),
      onEnd: (ctx, at, outcome) =>
        emit({ t: 'end', d: ctx.dispatch.dispatch_id, c: ctx.dispatch.claim_token ?? '', at, o: outcome }),
      onLiveCommand: (ctx) => emit({ t: 'live', d: ctx.dispatch.dispatch_id }),
    });
    this.mailbox = new Mailbox({
      store: opts.store,
      executor,
      consumerId: opts.nodeId,
      config: opts.mailboxConfig,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.mailbox.on('completed', (d) => emit({ t: 'event', e: 'completed', d: d.dispatch_id }));
    this.mailbox.on('retried', (d) => emit({ t: 'event', e: 'retried', d: d.dispatch_id }));
    this.mailbox.on('deadLettered', (d) => emit({ t: 'event', e: 'deadLettered', d: d.dispatch_id }));
    this.mailbox.on('superseded', (d) => emit({ t: 'event', e: 'superseded', d: d.dispatch_id }));
    this.mailbox.on('cancelled', (d) => emit({ t: 'event', e: 'cancelled', d: d.dispatch_id }));
  }

  get id(): string {
    return this.opts.nodeId;
  }

  async start(): Promise<void> {
    await this.mailbox.start();
  }

  /** Graceful: lets running executors finish (within the Mailbox's stop grace), then releases everything. */
  stop(): Promise<void> {
    const stopping = this.stopped ?? this.mailbox.stop().then(() => undefined);
    this.stopped = stopping;
    return stopping;
  }
}

/**
 * A thread's runs on one NATS subscription (`ThreadRunsLive`): the wildcard `<thread subject>.run.>` covers
 * every run target of the thread, and each run registers its exact subject in a map. A Mailbox keeps it open
 * while its worker for the thread keeps running dispatches, so a chain of runs costs one SUB, one PING/PONG and
 * one UNSUB in all instead of one each per run (measured: the per-run subscription was about a third of a
 * JetStream dispatch's CPU, in nats-server and on the node).
 *
 * A command whose subject is registered goes to that run's stream, exactly as with its own subscription. Any
 * other run subject of the thread: while `holdsThread()` (this node's run holds the thread's one claim), no
 * other node can run a target of the thread, so it is answered with the server's own "no responders" status
 * (503), which requesters report as `NoSubscriber` at once, as if nobody subscribed. Otherwise (between two
 * runs, after this node's claim ended, while the subscription lingers after the thread's last run here) it is
 * left unanswered: another node may already run that target and answer it; if none does, the requester times
 * out into `NoSubscriber`, never a wrong `Delivered`.
 */
import type { Msg, Subscription } from '@nats-io/nats-core';
import type { LiveRunCommandStream, LiveRunTarget } from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import type { ThreadRunsLive } from './channel.js';
import { NatsLiveReceipt, NatsLiveStream, redactCredentials } from './nats-live.js';
import { targetLiveSubject, threadLiveSubject } from './subjects.js';

export interface NatsThreadRunsOptions {
  prefix: string;
  threadId: string;
  maxBuffered: number;
  logger: Logger;
  holdsThread: () => boolean;
  /** Subscribe `subject` with `callback` (the channel's connection). */
  subscribe(subject: string, callback: (err: Error | null, msg: Msg) => void): Subscription;
  /** Decode a command and push it to `stream` (the channel's own handling, with its drop counters). */
  route(stream: NatsLiveStream, subject: string, err: Error | null, msg: Msg): void;
  /** UNSUB once this event-loop turn is over (the channel batches them). */
  unsubscribe(sub: Subscription): Promise<void>;
  /** The channel forgets this subscription. */
  onClose(): void;
}

export class NatsThreadRuns implements ThreadRunsLive {
  readonly #o: NatsThreadRunsOptions;
  /** `<thread subject>.run.`: every run subject of the thread starts with it. */
  readonly #runsPrefix: string;
  readonly #runs = new Map<string, NatsLiveStream>();
  readonly #sub: Subscription;
  #closing: Promise<void> | null = null;

  constructor(options: NatsThreadRunsOptions) {
    this.#o = options;
    this.#runsPrefix = `${threadLiveSubject(options.prefix, options.threadId)}.run.`;
    this.#sub = options.subscribe(`${this.#runsPrefix}>`, (err, msg) => this.#onMessage(err, msg));
    // The connection closed (or the server revoked the subscription): end the run streams instead of hanging.
    void this.#sub.closed.then(
      () => this.#endAll(),
      () => this.#endAll(),
    );
  }

  get closed(): boolean {
    return this.#closing !== null || this.#sub.isClosed();
  }

  openRun(target: LiveRunTarget): LiveRunCommandStream | null {
    if (this.closed) return null;
    const subject = targetLiveSubject(this.#o.prefix, target);
    if (!subject.startsWith(this.#runsPrefix) || this.#runs.has(subject)) return null;
    const stream: NatsLiveStream = new NatsLiveStream(
      this.#o.maxBuffered,
      () => {
        if (this.#runs.get(subject) === stream) this.#runs.delete(subject);
      },
      () => Promise.resolve(),
    );
    this.#runs.set(subject, stream);
    return stream;
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#endAll();
    this.#o.onClose();
    this.#closing = this.#sub.isClosed() ? Promise.resolve() : this.#o.unsubscribe(this.#sub);
    return this.#closing;
  }

  #onMessage(err: Error | null, msg: Msg): void {
    if (err) {
      this.#o.logger.warn?.('live subscription error', {
        subject: `${this.#runsPrefix}>`,
        error: redactCredentials(err.message),
      });
      return;
    }
    const stream = this.#runs.get(msg.subject);
    if (stream !== undefined) {
      this.#o.route(stream, msg.subject, null, msg);
      return;
    }
    if (this.#runs.size > 0 && this.#o.holdsThread()) void new NatsLiveReceipt(msg, this.#o.logger).reject();
  }

  #endAll(): void {
    for (const stream of [...this.#runs.values()]) void stream.close();
    this.#runs.clear();
  }
}

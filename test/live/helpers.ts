/** Small helpers shared by the live tests. */
import { connect } from '@nats-io/transport-node';
import type { ConnectionOptions, NatsConnection } from '@nats-io/nats-core';
import { encodeLiveRunCommand } from '../../src/contract/codec.js';
import type { LiveRunCommand, LiveRunCommandEntry, LiveRunCommandStream } from '../../src/contract/types.js';
import { NatsLiveChannel, type NatsLiveChannelOptions } from '../../src/live/nats-live.js';

export async function connectTo(
  url: string,
  extra: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  return connect({ servers: url, name: 'awaken-live-test', ...extra });
}

export const wire = (c: LiveRunCommand): string => encodeLiveRunCommand(c);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The next entry, or null if none arrives within `ms` (the pending `next()` stays queued on the stream). */
export async function nextWithin(
  stream: LiveRunCommandStream,
  ms: number,
): Promise<LiveRunCommandEntry | null> {
  const it = stream[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r === null) return null;
    return r.done ? null : r.value;
  } finally {
    clearTimeout(timer);
  }
}

/** A background consumer that acks every entry (unless `ack` is false) and records the commands it saw. */
export interface Recorder {
  readonly seen: LiveRunCommand[];
  readonly ended: Promise<void>;
  /** Resolves once `n` commands were seen (rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<LiveRunCommand[]>;
}

export function record(stream: LiveRunCommandStream, opts: { ack?: boolean } = {}): Recorder {
  const seen: LiveRunCommand[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const ended = (async () => {
    for await (const entry of stream) {
      seen.push(entry.command);
      if (opts.ack !== false) await entry.receipt.ack();
      for (const w of waiters.filter((w) => seen.length >= w.n)) w.resolve();
    }
  })();
  return {
    seen,
    ended,
    async waitFor(n, ms = 10_000) {
      if (seen.length >= n) return seen;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => waiters.push({ n, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`saw ${seen.length} of ${n} commands within ${ms} ms`)),
            ms,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      return seen;
    },
  };
}

/** Poll `fn` every `intervalMs` until it returns true, or fail after `ms`. */
export async function eventually(
  fn: () => Promise<boolean> | boolean,
  ms: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await sleep(intervalMs);
  }
}

/** Three "nodes" on their own connections to one server, each with a live channel under one prefix. */
export interface LiveNodes {
  producerNc: NatsConnection;
  consumerNc: NatsConnection;
  otherNc: NatsConnection;
  producer: NatsLiveChannel;
  consumer: NatsLiveChannel;
  other: NatsLiveChannel;
  /** Close the channels, then the connections. */
  close(): Promise<void>;
}

export async function openLiveNodes(
  url: string,
  subjectPrefix: string,
  producerOptions: Partial<NatsLiveChannelOptions> = {},
): Promise<LiveNodes> {
  const [producerNc, consumerNc, otherNc] = await Promise.all([
    connectTo(url),
    connectTo(url),
    connectTo(url),
  ]);
  const producer = new NatsLiveChannel({ ...producerOptions, nc: producerNc, subjectPrefix });
  const consumer = new NatsLiveChannel({ nc: consumerNc, subjectPrefix });
  const other = new NatsLiveChannel({ nc: otherNc, subjectPrefix });
  return {
    producerNc,
    consumerNc,
    otherNc,
    producer,
    consumer,
    other,
    async close() {
      await Promise.all([producer.close(), consumer.close(), other.close()]);
      await Promise.all([producerNc.close(), consumerNc.close(), otherNc.close()]);
    },
  };
}

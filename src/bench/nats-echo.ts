/**
 * The raw NATS request-reply yardstick for the live path: each node process answers plain requests on its own
 * echo subject, and the coordinator pings the node right after each live command it sent there. Both round
 * trips cross the same processes and server under the same load, so their ratio is the cost of the live stack
 * (exact-target subscription, forwarder, run inbox, executor ack) over bare request-reply.
 */
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { preciseNow } from './protocol.js';

const REQUEST_TIMEOUT_MS = 5000;

export function echoSubject(namespace: string, node: string): string {
  return `${namespace}.bench.echo.${node}`;
}

/** Answer every request on `subject` with an empty reply; resolves with the stop function once subscribed. */
export async function startEchoResponder(url: string, subject: string): Promise<() => Promise<void>> {
  const nc = await connect({ servers: url, name: `awaken-bench-echo-${subject}` });
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond();
    },
  });
  await nc.flush();
  return async () => {
    await nc.close();
  };
}

export class EchoClient {
  private constructor(private readonly nc: NatsConnection) {}

  static async open(url: string): Promise<EchoClient> {
    return new EchoClient(await connect({ servers: url, name: 'awaken-bench-echo-client' }));
  }

  /** One request-reply round trip in ms, or null when nobody answered. */
  async ping(subject: string): Promise<number | null> {
    const t0 = preciseNow();
    try {
      await this.nc.request(subject, undefined, { timeout: REQUEST_TIMEOUT_MS });
      return preciseNow() - t0;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

/**
 * `closeSocketsOnFailure(open)`: run `open` and, if it rejects, destroy every TCP client socket it created that
 * is still open.
 *
 * Why: nats.js 3.x leaks its socket when a connect fails after the TCP connection was accepted. A listener that
 * is not a NATS server (it never sends NATS's `INFO` line) makes `connect()` reject on its timeout while the
 * socket stays open, with nothing left holding a reference to close it, so the process never exits.
 *
 * How: Node publishes every client socket `net.connect` creates on the `net.client.socket` diagnostics
 * channel, synchronously in the creator's async context, so an `AsyncLocalStorage` scope attributes sockets to
 * the `open` call that made them; concurrent calls never touch each other's sockets. Sockets created after
 * `open` settled (a live connection reconnecting later) are not tracked.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

interface Scope {
  /** Sockets created inside this scope; null once `open` settled (stop collecting). */
  sockets: Set<Socket> | null;
}

const scopes = new AsyncLocalStorage<Scope>();
let activeScopes = 0;

function onClientSocket(message: unknown): void {
  const socket = (message as { socket?: Socket } | null)?.socket;
  const scope = scopes.getStore();
  if (socket !== undefined && scope?.sockets) scope.sockets.add(socket);
}

export async function closeSocketsOnFailure<T>(open: () => Promise<T>): Promise<T> {
  const scope: Scope = { sockets: new Set() };
  if (activeScopes++ === 0) diagnosticsChannel.subscribe('net.client.socket', onClientSocket);
  try {
    return await scopes.run(scope, open);
  } catch (err) {
    for (const socket of scope.sockets ?? []) {
      if (!socket.destroyed) socket.destroy();
    }
    throw err;
  } finally {
    scope.sockets = null;
    if (--activeScopes === 0) {
      diagnosticsChannel.unsubscribe('net.client.socket', onClientSocket);
      // An AsyncLocalStorage that ran once keeps Node's promise hooks installed for good: every promise of the
      // process then pays for them (a worker node spent ~10 % of its CPU in promiseInitHook and friends after
      // its NATS connect). Disabled, it uninstalls them; the next `run` enables it again.
      scopes.disable();
    }
  }
}

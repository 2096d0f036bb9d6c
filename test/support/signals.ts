import type { MailboxStore } from '../../src/contract/store.js';
import type { DispatchSignalEntry } from '../../src/contract/types.js';

/**
 * Pull signals until one for dispatch `id` comes (returned unacked, with when it arrived) or `timeoutMs`
 * passes; every other signal pulled meanwhile is acked.
 */
export async function pullFor(
  store: Pick<MailboxStore, 'pullDispatchSignals'>,
  id: string,
  timeoutMs: number,
): Promise<{ entry: DispatchSignalEntry; at: number } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const batch = await store.pullDispatchSignals(16, Math.max(20, Math.min(500, deadline - Date.now())));
    const at = Date.now();
    let found: DispatchSignalEntry | null = null;
    for (const e of batch) {
      if (found === null && e.dispatch_id === id) found = e;
      else await e.receipt.ack();
    }
    if (found) return { entry: found, at };
  }
  return null;
}

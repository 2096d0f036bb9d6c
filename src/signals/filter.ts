import type { DispatchSignalEntry, RunDispatch } from '../contract/types.js';
import { isTerminal } from '../contract/types.js';
import type { RawSignal } from './transport.js';

/** What the filter reads of a signalled dispatch's record. */
export type SignalTarget = Pick<RunDispatch, 'dispatch_id' | 'thread_id' | 'status' | 'available_at'>;

/** Longest a not-yet-available dispatch's signal is parked with nackWithDelay instead of acked. */
export const MAX_PARKED_SIGNAL_MS = 30_000;

/**
 * Signals must never stall work. Ack and skip signals whose dispatch is missing or
 * terminal; nack-with-delay (until `available_at`) and skip Queued dispatches not yet available; return
 * the rest. A load failure leaves the signal for immediate redelivery rather than dropping it.
 */
export async function filterSignals(
  raw: readonly RawSignal[],
  load: (dispatchIds: readonly string[]) => Promise<(SignalTarget | null)[]>,
  now: number,
): Promise<DispatchSignalEntry[]> {
  if (raw.length === 0) return [];
  let records: (SignalTarget | null)[];
  try {
    records = await load(raw.map((s) => s.dispatch_id));
  } catch (err) {
    await Promise.allSettled(raw.map((s) => s.receipt.nack()));
    throw err;
  }
  const keep: DispatchSignalEntry[] = [];
  const settle: Promise<void>[] = [];
  raw.forEach((signal, i) => {
    const d = records[i] ?? null;
    if (d === null || isTerminal(d.status)) {
      settle.push(signal.receipt.ack());
    } else if (d.status === 'Queued' && d.available_at > now) {
      // Short waits are redelivered by the transport. A long one is acked: the sweeper signals the dispatch
      // when it becomes available, and a parked JetStream delivery would hold a max_ack_pending slot.
      const wait = d.available_at - now;
      settle.push(
        wait > MAX_PARKED_SIGNAL_MS ? signal.receipt.ack() : signal.receipt.nackWithDelay(Math.max(1, wait)),
      );
    } else {
      keep.push({ thread_id: d.thread_id, dispatch_id: d.dispatch_id, receipt: signal.receipt });
    }
  });
  await Promise.allSettled(settle);
  return keep;
}

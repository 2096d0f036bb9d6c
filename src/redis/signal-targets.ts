/**
 * The records behind a batch of pulled signals, for `filterSignals`, with the policy both Redis stores share:
 * a signal naming an invalid id, or a corrupt record, counts as "no dispatch" (acked and skipped, with a
 * warning), so one bad record never stalls every other signal; once the record is repaired the sweeper
 * signals it again. Connection failures still throw.
 */
import { StorageError } from '../contract/errors.js';
import type { SignalTarget } from '../signals/filter.js';
import type { Logger } from '../util/logger.js';
import { id } from './ids.js';

/** Loads signal targets by (valid) id, in order: a target, null when missing, or the error of a corrupt record. */
export type RecordLoader = (
  dispatchIds: readonly string[],
) => Promise<readonly (SignalTarget | StorageError | null)[]>;

export async function loadSignalTargets(
  dispatchIds: readonly string[],
  load: RecordLoader,
  logger: Logger,
): Promise<(SignalTarget | null)[]> {
  const valid = dispatchIds.map((d) => {
    try {
      return id('dispatch_id', d);
    } catch {
      return null;
    }
  });
  const present = valid.filter((d): d is string => d !== null);
  const records = await load(present);
  const byId = new Map(present.map((d, i) => [d, records[i] ?? null]));
  return valid.map((d) => {
    if (d === null) return null;
    const r = byId.get(d) ?? null;
    if (r instanceof StorageError) {
      logger.warn?.('skipping the signal of a corrupt dispatch record', { dispatch: d, error: r.message });
      return null;
    }
    return r;
  });
}

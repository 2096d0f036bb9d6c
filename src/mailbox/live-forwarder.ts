/**
 * The runtime forwarder (as upstream Awaken runs it), for one run: reads the run's live channel and
 * - `Cancel` → abort the run (`onCancel`, which finds out whether the cancel stands for an interrupt) and
 *   ack, then stop forwarding; a run whose executor already returned is not cancelled any more, so then the
 *   receipt is rejected (the sender sees NoSubscriber at once) instead of acked;
 * - `Messages` / `Decision` / `PendingBoundaryWake` → into the run's inbox (the executor acks once it accepted
 *   them); a full inbox drops the receipt, one whose executor does not read commands rejects it (the
 *   sender sees NoSubscriber at once and queues durably), a closed one ends forwarding;
 * - anything else (a newer variant this build does not know) → abort the run and drop the receipt: fail closed.
 */
import type { LiveRunCommand, LiveRunCommandStream } from '../contract/types.js';
import type { Logger } from '../util/logger.js';
import type { CommandInbox } from './command-inbox.js';
import { errorMessage } from './errors.js';

export function isKnownForwardedCommand(command: LiveRunCommand): boolean {
  if (command === 'PendingBoundaryWake') return true;
  if (typeof command !== 'object' || command === null) return false;
  const keys = Object.keys(command);
  if (keys.length !== 1) return false;
  const entry = command as Record<string, unknown>;
  return (
    (keys[0] === 'Messages' && Array.isArray(entry.Messages)) ||
    (keys[0] === 'Decision' && Array.isArray(entry.Decision))
  );
}

export async function forwardLiveCommands(
  stream: LiveRunCommandStream,
  inbox: CommandInbox,
  /** Abort the run; false when it could no longer be cancelled (its executor had returned). */
  onCancel: () => Promise<boolean>,
  abortRun: () => void,
  logger: Logger,
  runLabel: Record<string, unknown>,
): Promise<void> {
  try {
    for await (const entry of stream) {
      const { command } = entry;
      if (command === 'Cancel') {
        if (await onCancel()) {
          await entry.receipt.ack().catch((err: unknown) => {
            logger.warn?.('live cancel ack failed', { ...runLabel, error: errorMessage(err) });
          });
        } else {
          await entry.receipt.reject?.().catch(() => undefined);
        }
        return;
      }
      if (isKnownForwardedCommand(command)) {
        if (!inbox.offer(entry)) {
          if (inbox.isClosed) return;
          if (inbox.isReading) {
            logger.warn?.('run inbox full; live command not delivered', runLabel);
          } else {
            // Nobody will ever ack it: say so now rather than let the sender wait for its timeout.
            await entry.receipt.reject?.().catch(() => undefined);
          }
        }
        continue;
      }
      logger.warn?.('unknown live command; cancelling the run', { ...runLabel, command: safeJson(command) });
      abortRun();
      return;
    }
  } catch (err) {
    logger.warn?.('live channel failed; the run continues without live commands', {
      ...runLabel,
      error: errorMessage(err),
    });
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

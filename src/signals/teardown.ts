/**
 * Teardown requests to the JetStream API (deleting a namespace's consumer and stream) that survive a cluster
 * re-electing its leaders: right after a server of a replicated stream dies, such a request can time out or
 * be refused as "temporarily unavailable" for a few seconds, and a cleanup that gives up then leaves the
 * stream behind.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestError, TimeoutError } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import { StorageError } from '../contract/errors.js';

/** JetStream API error 10008: the server's JetStream layer is not ready (an election is under way). */
const JS_TEMPORARILY_UNAVAILABLE = 10008;

/** A request that may succeed if repeated: it timed out, found no responder, or met an election. */
export function isTransientApiFailure(err: unknown): boolean {
  return (
    err instanceof TimeoutError ||
    err instanceof RequestError ||
    (err instanceof JetStreamApiError && err.code === JS_TEMPORARILY_UNAVAILABLE)
  );
}

export interface TeardownRetry {
  /** Transient failures tolerated before giving up (default 6). */
  attempts?: number;
  /** Pause after the first failure, doubled after each next one (default 250 ms). */
  firstPauseMs?: number;
  /** Longest pause (default 5 s: about 20 s in all with the defaults, on top of each request's timeout). */
  maxPauseMs?: number;
}

/**
 * Run `request` until it succeeds, fails for good, or has failed transiently `attempts` times. A request that
 * timed out may have taken effect on the server, so a later failure that `gone` recognises (the object no
 * longer exists) counts as done. Failures are reported as `StorageError` of kind Io naming `what`.
 */
export async function teardownWithRetry(
  what: string,
  request: () => Promise<unknown>,
  gone: (err: unknown) => boolean,
  retry: TeardownRetry = {},
): Promise<void> {
  const attempts = retry.attempts ?? 6;
  const maxPause = retry.maxPauseMs ?? 5000;
  let pause = retry.firstPauseMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await request();
      return;
    } catch (err) {
      if (gone(err)) return;
      if (!isTransientApiFailure(err) || attempt >= attempts) {
        const tries = attempt > 1 ? ` (after ${attempt} attempts)` : '';
        const text = err instanceof Error ? err.message : String(err);
        throw StorageError.io(`${what} failed${tries}: ${text}`);
      }
    }
    await sleep(pause);
    pause = Math.min(pause * 2, maxPause);
  }
}

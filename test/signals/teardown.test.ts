/**
 * Deleting a namespace's JetStream consumer and stream right after a cluster lost a server: requests that
 * time out or meet an election are repeated (bounded), a repeat that finds the object gone counts as done,
 * and anything else fails at once with an Io error naming what was being deleted.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/nats-core';
import { describe, expect, it } from 'vitest';
import { isStorageError } from '../../src/contract/errors.js';
import { isTransientApiFailure, teardownWithRetry } from '../../src/signals/teardown.js';

const fast = { firstPauseMs: 1, maxPauseMs: 2 };
const apiError = (code: number, description: string): JetStreamApiError =>
  new JetStreamApiError({ code: 503, err_code: code, description });
const notFound = (err: unknown): boolean => err instanceof JetStreamApiError && err.code === 10059;

/** A request that fails with each of `failures` in turn, then succeeds; counts its calls. */
function scripted(failures: unknown[]): { calls: () => number; request: () => Promise<unknown> } {
  let calls = 0;
  return {
    calls: () => calls,
    request: async () => {
      const failure = failures[calls++];
      if (failure !== undefined) throw failure;
      return true;
    },
  };
}

describe('JetStream teardown retry', () => {
  it('repeats a request that timed out or met an election until it succeeds', async () => {
    const s = scripted([new TimeoutError(), apiError(10008, 'JetStream system temporarily unavailable')]);
    await teardownWithRetry('deleting S', s.request, notFound, fast);
    expect(s.calls()).toBe(3);
  });

  it('counts a repeat that finds the object gone as done (the timed-out request took effect)', async () => {
    const s = scripted([new TimeoutError(), apiError(10059, 'stream not found')]);
    await teardownWithRetry('deleting S', s.request, notFound, fast);
    expect(s.calls()).toBe(2);
  });

  it('fails at once, as Io naming the target, on an error a repeat would not cure', async () => {
    const s = scripted([apiError(10039, 'account resources exceeded')]);
    const err = await teardownWithRetry('deleting S', s.request, notFound, fast).catch((e: unknown) => e);
    expect(isStorageError(err) && err.kind).toBe('Io');
    expect(String((err as Error).message)).toMatch(/deleting S failed: account resources exceeded/);
    expect(s.calls()).toBe(1);
  });

  it('gives up after the bounded number of transient failures and says how many', async () => {
    const s = scripted(Array.from({ length: 10 }, () => new TimeoutError()));
    const err = await teardownWithRetry('deleting S', s.request, notFound, { ...fast, attempts: 4 }).catch(
      (e: unknown) => e,
    );
    expect(isStorageError(err) && err.kind).toBe('Io');
    expect(String((err as Error).message)).toMatch(/deleting S failed \(after 4 attempts\): timeout/);
    expect(s.calls()).toBe(4);
  });

  it('treats timeouts and elections as transient, and other API errors as final', () => {
    expect(isTransientApiFailure(new TimeoutError())).toBe(true);
    expect(isTransientApiFailure(apiError(10008, 'JetStream system temporarily unavailable'))).toBe(true);
    expect(isTransientApiFailure(apiError(10059, 'stream not found'))).toBe(false);
    expect(isTransientApiFailure(new Error('boom'))).toBe(false);
  });
});

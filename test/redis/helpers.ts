/** Shared fixtures for the Redis store tests: a store in its own namespace plus a raw client for hand edits. */
import { Redis } from 'ioredis';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { NextClaim } from '../../src/contract/fused.js';
import type { RunDispatch, RunDispatchResult } from '../../src/contract/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { CreateMailboxStoreOptions, RedisMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';

export interface RedisFixture {
  store: RedisMailboxStore;
  raw: Redis;
  namespace: string;
  cleanup(): Promise<void>;
}

export async function openFixture(
  label: string,
  extra: Partial<CreateMailboxStoreOptions> = {},
): Promise<RedisFixture> {
  const url = await redisUrl();
  const namespace = testNamespace(label);
  const store = await createMailboxStore({ redis: url, namespace, signals: 'none', ...extra });
  const raw = new Redis(url, { maxRetriesPerRequest: 1 });
  return {
    store,
    raw,
    namespace,
    async cleanup() {
      try {
        await store.destroyNamespace();
      } finally {
        await store.close();
        raw.disconnect();
      }
    },
  };
}

export function dispatch(
  id: string,
  thread: string,
  at = 1000,
  extra: Partial<RunDispatch> = {},
): RunDispatch {
  return queuedDispatch({
    dispatch_id: id,
    thread_id: thread,
    run_id: `run-${id}`,
    created_at: at,
    ...extra,
  });
}

/** The result of a run that ended normally, as the fused completions take it. */
export function doneResult(runId: string, instanceId = 'inst'): RunDispatchResult {
  return {
    run_id: runId,
    dispatch_instance_id: instanceId,
    status: 'done',
    termination: { type: 'natural_end' },
    response: 'ok',
    error: null,
  };
}

/** The claim `completeAndClaimNext` chains onto a completion: thread `threadId`, instance `inst`. */
export function nextClaim(threadId: string, consumerId = 'c1', leaseMs = 1000): NextClaim {
  return { threadId, consumerId, leaseMs, dispatchInstanceId: 'inst' };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key of a namespace (SCAN), sorted. */
export async function namespaceKeys(raw: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', '1000');
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

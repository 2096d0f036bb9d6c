/**
 * The ONE module that builds Redis key names. `lua/prelude.lua` derives the same
 * names from the prefix (see lua/README.md); `test/redis/keys.test.ts` checks the two agree.
 *
 * Layout: every key of a namespace starts with `awaken:{<namespace>}:` (or `awaken:{@default}:` without a
 * namespace). The `{...}` part is a Redis Cluster hash tag, so every key one Lua script touches lives in one
 * slot; `@` is not allowed in namespace names, so the default tag can never collide with a namespace.
 * Ids (dispatch, thread, dedupe key) are always the LAST part of a key and every key kind has its own
 * fixed infix, so ids containing `:`, `{`, `}` or any other character cannot make two keys collide.
 *
 * A namespace split into N > 1 partitions (`partitionKeys`, src/redis/partitions.ts) gives partition k its
 * own tag and otherwise the same layout, so each partition is one slot. The tag is `{<namespace>:p<k>}`
 * (`{@default:p<k>}` without a namespace) when that hashes into the middle quarter of the k-th of N equal
 * ranges of the 16384 cluster slots, else `{<namespace>:p<k>.<j>}` with the smallest j >= 1 that does: the N
 * partitions sit at even intervals over the slot space, away from range edges, so masters owning equal
 * slot ranges get an even share of them (8 over 3 masters: 3/2/3; a plain `{<ns>:p<k>}` lands wherever
 * CRC16 puts it, and 8 partitions over 3 masters were often 4/2/2). The choice depends only on the
 * namespace, k and N, so it never changes. `:` is not allowed in namespace names,
 * so partition tags never collide with a namespace's own tag. With one partition the keys are exactly the
 * ones above.
 */
import { StorageError } from '../contract/errors.js';
import type { RunDispatchStatus } from '../contract/types.js';
import { CLUSTER_SLOTS, keySlot } from './cluster.js';

/** Letters, digits, `_` and `-`: safe in Redis keys, JetStream stream names and NATS subject tokens. */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9_-]+$/;
export const MAX_NAMESPACE_LENGTH = 64;
/** Hash tag used when no namespace is configured. */
export const DEFAULT_HASH_TAG = '{@default}';
/** Redis Streams consumer group of the dispatch-signal stream (a group name, not a key). */
export const SIGNAL_GROUP = 'awaken-dispatch';

export interface RedisKeys {
  readonly namespace: string | null;
  /** `awaken:{<ns>}:` — passed as KEYS[1] to every script; Lua derives per-id keys from it. */
  readonly prefix: string;
  /** `{<ns>}` — the cluster hash tag shared by every key of the namespace. */
  readonly hashTag: string;
  /** SCAN MATCH pattern covering every key of the namespace (teardown only). */
  readonly pattern: string;

  /** Hash: one field per RunDispatch attribute (null = field absent; termination as JSON). */
  record(dispatchId: string): string;
  /** Hash: `epoch` (current dispatch epoch, absent = 0) and `n` (records of the thread). */
  thread(threadId: string): string;
  /** Zset (all scores 0, lex order): Queued dispatches promoted as available, member = order key. */
  ready(threadId: string): string;
  /** Zset: Queued dispatches not yet promoted, score = available_at, member = order key. */
  waiting(threadId: string): string;
  /** Zset (all scores 0, lex order): the thread's dispatches in `status`, member = order key. */
  byStatus(status: RunDispatchStatus, threadId: string): string;
  /** Hash: dedupe_key → dispatch_id of the non-terminal holder. */
  dedupe(threadId: string): string;
  /**
   * Set: Queued dispatches of the thread known to carry an older epoch than the thread. The scripts never
   * produce one (interrupt supersedes every Queued dispatch, enqueue stamps the current epoch); whoever
   * writes records outside them (imports, repairs, the conformance `plant` hook) lists such ids here, and
   * the next claim of the thread supersedes them (whatever the claim's limit, as the memory store does).
   */
  staleQueued(threadId: string): string;

  /** Hash: status → number of dispatches in that status (O(1) counts). */
  readonly counts: string;
  /** Zset: Claimed dispatch ids by lease_until. */
  readonly leases: string;
  /** Zset: terminal dispatches by updated_at, member = `<created_at 16 digits>|<dispatch_id>`. */
  readonly terminal: string;
  /** Zset: thread id → number of Queued dispatches (removed at 0). */
  readonly queuedThreads: string;
  /** Zset: Queued dispatch ids by "next signal due" = max(available_at, last signal + republish delay). */
  readonly due: string;
  /** Set: threads that got epoch state while holding no record (interrupt of an empty thread). */
  readonly drainedThreads: string;
  /** Stream: dispatch signals (`t` = thread_id, `d` = dispatch_id), used by the Redis Streams transport. */
  readonly signalStream: string;
  /** Zset: signals nacked with a delay (owned by the Redis Streams transport). */
  readonly signalDelayed: string;
  /** Consumer group name of `signalStream`. */
  readonly signalGroup: string;
  /** Stream, capped: the lifecycle feed of the namespace when it has no NATS (src/feed/). */
  readonly lifecycleFeed: string;
  /**
   * Hash, only with partitions > 1: dispatch_id → partition of the dispatch, for the dispatch ids whose
   * directory shard is this partition (src/redis/partitions.ts).
   */
  readonly dispatchDirectory: string;

  /**
   * The namespace's global keys, in the order lua/prelude.lua derives them from the prefix (the only one of
   * them a script receives, as KEYS[1]): prefix, counts, leases, terminal, queued threads, due, signal
   * stream, drained threads.
   */
  readonly scriptGlobals: readonly string[];
}

/** Order keys sort by priority ASC, created_at ASC, dispatch_id ASC (byte order). */
export function orderKey(priority: number, createdAt: number, dispatchId: string): string {
  return `${String(priority).padStart(3, '0')}|${String(createdAt).padStart(16, '0')}|${dispatchId}`;
}

/** Member of the terminal index: ties on updated_at break on created_at, then dispatch_id. */
export function terminalKey(createdAt: number, dispatchId: string): string {
  return `${String(createdAt).padStart(16, '0')}|${dispatchId}`;
}

export function validateNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
    throw StorageError.validation('namespace must be letters, digits, "_" or "-"');
  }
  if (namespace.length > MAX_NAMESPACE_LENGTH) {
    throw StorageError.validation(`namespace must be at most ${MAX_NAMESPACE_LENGTH} characters`);
  }
  if (namespace === 'dispatch') {
    // Its subjects (`dispatch.dispatch.>`, `dispatch.live.>`) would fall inside the un-namespaced signal
    // stream's `dispatch.>`: JetStream would capture live requests and answer them as if delivered.
    throw StorageError.validation(
      'namespace "dispatch" is reserved (it overlaps the default signal subjects)',
    );
  }
  return namespace;
}

export function redisKeys(namespace: string | null): RedisKeys {
  const ns = namespace === null ? null : validateNamespace(namespace);
  return keysWithTag(ns, ns === null ? DEFAULT_HASH_TAG : `{${ns}}`);
}

/** Most partitions a namespace may have. */
export const MAX_PARTITIONS = 256;

/**
 * The keys of partition `index` of a namespace split into `count` partitions. With `count` 1 this is
 * `redisKeys(namespace)`, byte for byte.
 */
export function partitionKeys(namespace: string | null, index: number, count: number): RedisKeys {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_PARTITIONS) {
    throw StorageError.validation(`partitions must be an integer in 1..=${MAX_PARTITIONS}`);
  }
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw StorageError.validation(`partition index must be an integer in 0..${count - 1}`);
  }
  if (count === 1) return redisKeys(namespace);
  const ns = namespace === null ? null : validateNamespace(namespace);
  return keysWithTag(ns, partitionTag(ns ?? '@default', index, count));
}

/** The hash tag of partition `index` of `count` (see the module comment): stable, spread over the slots. */
export function partitionTag(base: string, index: number, count: number): string {
  const memo = `${base}\0${index}\0${count}`;
  const known = tagMemo.get(memo);
  if (known !== undefined) return known;
  const tag = searchPartitionTag(base, index, count);
  tagMemo.set(memo, tag);
  return tag;
}

/** Tags already searched (up to a few thousand per process: namespaces × partitions). */
const tagMemo = new Map<string, string>();

function searchPartitionTag(base: string, index: number, count: number): string {
  const segment = CLUSTER_SLOTS / count;
  const center = (index + 0.5) * segment;
  const from = Math.floor(center - segment / 8);
  const to = Math.max(from + 1, Math.floor(center + segment / 8));
  for (let j = 0; ; j++) {
    const tag = j === 0 ? `{${base}:p${index}}` : `{${base}:p${index}.${j}}`;
    const slot = keySlot(tag);
    if (slot >= from && slot < to) return tag;
  }
}

function keysWithTag(ns: string | null, hashTag: string): RedisKeys {
  const prefix = `awaken:${hashTag}:`;
  const counts = `${prefix}cnt`;
  const leases = `${prefix}lease`;
  const terminal = `${prefix}term`;
  const queuedThreads = `${prefix}qthreads`;
  const due = `${prefix}due`;
  const signalStream = `${prefix}sig:stream`;
  const drainedThreads = `${prefix}drained`;
  return {
    namespace: ns,
    prefix,
    hashTag,
    pattern: `${prefix}*`,
    record: (id) => `${prefix}d:${id}`,
    thread: (t) => `${prefix}th:${t}`,
    ready: (t) => `${prefix}tq:${t}`,
    waiting: (t) => `${prefix}tw:${t}`,
    byStatus: (s, t) => `${prefix}ts:${s}:${t}`,
    dedupe: (t) => `${prefix}dd:${t}`,
    staleQueued: (t) => `${prefix}sq:${t}`,
    counts,
    leases,
    terminal,
    queuedThreads,
    due,
    drainedThreads,
    signalStream,
    signalDelayed: `${prefix}sig:delayed`,
    signalGroup: SIGNAL_GROUP,
    lifecycleFeed: `${prefix}feed`,
    dispatchDirectory: `${prefix}dir`,
    scriptGlobals: [prefix, counts, leases, terminal, queuedThreads, due, signalStream, drainedThreads],
  };
}
